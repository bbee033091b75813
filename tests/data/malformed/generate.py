"""Writes the malformed-feed corpus (kinds modelled on feedparser's own illformed/ and encoding/ tests).

Run from the repository root: `python tests/data/malformed/generate.py`. Each file is listed in
manifest.toml with what it breaks and what the bot must still get out of it.
"""

from __future__ import annotations

import codecs
from pathlib import Path

HERE = Path(__file__).resolve().parent
STORY = "US adds Chinese chipmaker SMIC to Entity List, tightening export controls on chips"
TEXT = "The Bureau of Industry and Security added SMIC to the Entity List, requiring export licences for tools."
ITEM = f"<item><title>{STORY}</title><guid>smic-1</guid><link>https://news.example/smic</link>" \
       f"<description>{TEXT}</description><pubDate>Tue, 15 Jul 2025 03:00:00 GMT</pubDate></item>"
DECL = '<?xml version="1.0" encoding="utf-8"?>'


def rss(inner: str, decl: str = DECL, channel: str = "<title>Corpus</title>") -> str:
    return f"{decl}<rss version=\"2.0\"><channel>{channel}{inner}</channel></rss>"


def deep(n: int) -> str:
    return "<x>" * n + "deep" + "</x>" * n


TEXTS: dict[str, str] = {
    "unclosed_title.xml": rss(f"<item><title>Open title<guid>u1</guid></item>{ITEM}"),
    "missing_root_close.xml": rss(ITEM).removesuffix("</channel></rss>") + "</channel></rss",
    "truncated_mid_item.xml": rss(ITEM + "<item><title>Cut off in the mid")[:-30],
    "stray_end_tags.xml": rss(f"</image></width>{ITEM}</height></item></foo>"),
    "bare_ampersands.xml": rss("<item><title>AT&T and Procter & Gamble</title>"
                               "<link>https://news.example/get?a=1&b=2&c</link><guid>amp</guid></item>" + ITEM),
    "charref_out_of_range.xml": rss("<item><title>a &#1114112; b &#x110000; c &#55296; d &#0; e &#x1F;</title>"
                                    "<guid>charref</guid></item>" + ITEM),
    "html_entities_undeclared.xml": rss("<item><title>Caf&eacute;&nbsp;news &mdash; &hellip; &bogus;</title>"
                                        "<guid>ent</guid></item>" + ITEM),
    "undeclared_namespaces.xml": rss("<item><dc:creator>X</dc:creator><media:content url='x'/>"
                                     "<title>NS story</title><guid>ns</guid></item>" + ITEM),
    "cdata_script.xml": rss("<item><title><![CDATA[<script>alert(1)</script>Headline]]></title>"
                            "<description><![CDATA[<p>one]]>two<![CDATA[<iframe src=x>]]></description>"
                            "<guid>cdata</guid></item>" + ITEM),
    "nested_items.xml": rss(f"<item><title>Outer</title><item><title>Inner</title></item><guid>n</guid></item>{ITEM}"),
    "atom_no_ids_no_links.xml": '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
                                f"<entry><title>{STORY}</title><summary>{TEXT}</summary></entry>"
                                "<entry><title>No id either</title></entry></feed>",
    "atom_link_no_href.xml": '<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>tag:x,2025:1</id>'
                             f'<link rel="alternate"/><link rel="enclosure"/><title>{STORY}</title>'
                             "<updated>not-a-date</updated></entry></feed>",
    "atom_wrong_namespace.xml": '<feed xmlns="http://purl.org/atom/ns#draft-ietf-atompub-format-08">'
                                f"<entry><id>w</id><title>{STORY}</title><content type='xhtml'>"
                                "<div xmlns='http://www.w3.org/1999/xhtml'><b>bold</b></div></content></entry></feed>",
    "rss_items_outside_channel.xml": f'<rss version="2.0">{ITEM}<channel><title>Late</title></channel></rss>',
    "rdf_without_namespaces.xml": f"<rdf:RDF><channel><title>R</title></channel>{ITEM}</rdf:RDF>",
    "empty.xml": "",
    "whitespace_only.xml": "  \n\t \r\n ",
    "html_error_page.xml": "<!DOCTYPE html><html><head><title>404 Not Found</title></head>"
                           "<body><h1>Not Found</h1><script>location='x'</script></body></html>",
    "json_feed.json": '{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "title": "x"}]}',
    "junk_before_declaration.xml": "\n\n  garbage here\x00" + rss(ITEM),
    "two_documents.xml": rss(ITEM) + rss("<item><title>Second doc</title><guid>2</guid></item>"),
    "bogus_declaration.xml": rss(ITEM, decl='<?xml version="9.9" encoding="no-such-charset" standalone="maybe"?>'),
    "duplicate_elements.xml": rss("<item><title>First</title><title>Second</title><link>https://a.example/1</link>"
                                  "<link>javascript:alert(1)</link><guid>d1</guid><guid>d2</guid></item>" + ITEM),
    "weird_links.xml": rss("<item><title>Links</title><link>javascript:alert(document.cookie)</link><guid>l1</guid>"
                           "</item><item><title>Data</title><link>data:text/html,&lt;script&gt;</link></item>"
                           "<item><title>Rel</title><link>/relative/path?utm_source=x</link></item>"
                           f"<item><title>Long</title><link>https://news.example/{'a' * 5000}</link></item>"
                           "<item><title>Spaces</title><link> https://news.example/a b?utm_medium=rss#frag </link>"
                           "</item>" + ITEM),
    "dates_galore.xml": rss("".join(f"<item><title>Date {i}</title><guid>date{i}</guid><pubDate>{d}</pubDate></item>"
                                    for i, d in enumerate(["2025-13-45T99:99:99Z", "0000-00-00", "Tue, 31 Feb 2025",
                                                           "1700000000", "99999-01-01T00:00:00Z", "-0044-03-15",
                                                           "Sat, 01 Jan 10000 00:00:00 GMT", "2025-07-15T03:00:00",
                                                           "Tue, 15 Jul 2025 03:00:00 +9999"])) + ITEM),
    "controls_and_ansi.xml": rss("<item><title>Red \x1b[31malert\x1b[0m \x07 bell</title><guid>ctl</guid></item>"
                                 + ITEM),
    "bidi_and_zero_width.xml": rss("<item><title>\u202egnp.exe\u202c Nvidia\u200b H20\u2066 ban \ufeff</title>"
                                   "<guid>bidi</guid></item>" + ITEM),
    "huge_title.xml": rss(f"<item><title>{'Export control ' * 8000}</title><description>{'word ' * 40000}"
                          "</description><guid>huge</guid></item>" + ITEM),
    "deep_nesting.xml": rss(f"<item><title>Deep</title><description>{deep(5000)}</description><guid>deep</guid>"
                            "</item>" + ITEM),
    "escaped_deep_html.xml": rss("<item><title>Deep html</title><description>"
                                 + "&lt;div&gt;" * 10000 + "</description><guid>edh</guid></item>" + ITEM),
    "many_attributes.xml": rss("<item><title " + " ".join(f'a{i}="{i}"' for i in range(5000)) + ">Attrs</title>"
                               "<guid>attrs</guid></item>" + ITEM),
    "thousands_of_tiny_entries.xml": rss("<item/>" * 3000 + ITEM),
}

ENCODED: dict[str, bytes] = {
    "utf16le_bom_declared_utf8.xml": codecs.BOM_UTF16_LE + rss(ITEM).encode("utf-16-le"),
    "utf16be_no_bom.xml": rss(ITEM, decl='<?xml version="1.0" encoding="utf-16"?>').encode("utf-16-be"),
    "utf32_bom.xml": codecs.BOM_UTF32_LE + rss(ITEM, decl='<?xml version="1.0"?>').encode("utf-32-le"),
    "ebcdic_cp037.xml": rss(ITEM, decl='<?xml version="1.0" encoding="cp037"?>').encode("cp037"),
    "gb2312_undeclared.xml": rss("<item><title>美国将中芯国际列入实体清单</title><guid>zh</guid></item>" + ITEM,
                                 decl='<?xml version="1.0"?>').encode("gb2312"),
    "shift_jis_declared_utf8.xml": rss("<item><title>米国、半導体輸出規制を強化</title><guid>ja</guid></item>" + ITEM)
    .encode("shift_jis"),
    "cp1252_smart_quotes.xml": rss("<item><title>\u201cSmart\u201d quotes \u2013 and \u20ac</title><guid>q</guid>"
                                   "</item>" + ITEM, decl='<?xml version="1.0" encoding="iso-8859-1"?>')
    .encode("cp1252"),
    "mixed_utf8_and_latin1.xml": rss("<item><title>Caf\u00e9 @@</title><guid>mix</guid></item>" + ITEM).encode()
    .replace(b"@@", "Bu\u00dfgeld".encode("latin-1")),
    "nul_bytes.xml": rss(ITEM).encode().replace(b"<guid>", b"\x00<guid>\x00", 1),
    "line_noise.xml": bytes((i * 7919 + 13) % 256 for i in range(4096)),
    "only_bom.xml": codecs.BOM_UTF8,
}


def main() -> None:
    for name, text in TEXTS.items():
        (HERE / name).write_bytes(text.encode("utf-8"))
    for name, data in ENCODED.items():
        (HERE / name).write_bytes(data)
    print(f"wrote {len(TEXTS) + len(ENCODED)} files to {HERE}")


if __name__ == "__main__":
    main()
