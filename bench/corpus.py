"""A deterministic, multilingual feed corpus for the scale bench: N feeds of ~50 items, realistic sizes.

Background items are ordinary business and tech news (never export-control stories), with 300-600
characters of HTML summary, tracking parameters on links, RSS 2.0 or Atom. Each change cycle publishes a
new item on a fixed fraction of the feeds; a few of those are export-control stories about distinct
companies in distinct languages, so each one is a first report and alerts.
"""

# ruff: noqa: RUF001 - the corpus is multilingual on purpose: full-width punctuation and Cyrillic are real text

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

LANGS = ("en", "de", "fr", "es", "ja", "zh", "ko", "ru", "pt", "it")

# Ordinary news: headline templates and lede sentences per language ({org} and {n} are filled in).
HEADLINES = {
    "en": ["{org} shares rise {n}% after quarterly results beat forecasts", "{org} names new chief executive",
           "Central bank holds rates steady as inflation eases to {n}%", "{org} opens new office in Austin"],
    "de": ["{org} steigert Umsatz um {n} Prozent im dritten Quartal", "{org} ernennt neuen Vorstandschef",
           "Ifo-Index steigt überraschend auf {n} Punkte", "{org} eröffnet Werk in Sachsen"],
    "fr": ["{org} relève ses prévisions annuelles de {n} %", "{org} nomme un nouveau directeur général",
           "La BCE maintient ses taux, l'inflation recule à {n} %", "{org} inaugure un site à Lyon"],
    "es": ["{org} eleva un {n}% su beneficio trimestral", "{org} nombra nuevo consejero delegado",
           "El paro baja al {n}% en el tercer trimestre", "{org} abre una nueva sede en Madrid"],
    "ja": ["{org}、四半期純利益が{n}%増", "{org}が新社長を発表", "日銀、政策金利を据え置き 物価上昇率{n}%",
           "{org}、大阪に新拠点を開設"],
    "zh": ["{org}第三季度营收增长{n}%", "{org}宣布任命新任首席执行官", "央行维持利率不变，通胀回落至{n}%",
           "{org}在深圳设立新办公室"],
    "ko": ["{org}, 3분기 영업이익 {n}% 증가", "{org}, 신임 대표이사 선임", "한국은행 기준금리 동결…물가 {n}%",
           "{org}, 판교에 신규 연구소 개소"],
    "ru": ["{org} увеличила выручку на {n}% в третьем квартале", "{org} назначила нового гендиректора",
           "ЦБ сохранил ставку, инфляция замедлилась до {n}%", "{org} открыла офис в Казани"],
    "pt": ["{org} aumenta lucro em {n}% no trimestre", "{org} nomeia novo presidente-executivo",
           "Banco central mantém juros e inflação cai para {n}%", "{org} inaugura escritório em Lisboa"],
    "it": ["{org} alza le stime annuali del {n}%", "{org} nomina un nuovo amministratore delegato",
           "La Bce lascia i tassi invariati, inflazione al {n}%", "{org} apre una nuova sede a Milano"],
}
LEDES = {
    "en": ["Analysts had expected a weaker quarter, citing soft consumer demand and higher costs.",
           "The company said it would continue to invest in cloud services and customer support.",
           "Investors welcomed the update, although some cautioned that margins remain under pressure.",
           "The board also approved a share buyback programme worth several hundred million dollars.",
           "Executives told analysts on a conference call that orders picked up in the final weeks."],
    "de": ["Analysten hatten mit einem schwächeren Quartal gerechnet und verwiesen auf höhere Kosten.",
           "Das Unternehmen will weiter in Cloud-Dienste und den Kundenservice investieren.",
           "Anleger begrüßten die Nachricht, einige warnten jedoch vor anhaltendem Margendruck.",
           "Der Aufsichtsrat billigte zudem ein Aktienrückkaufprogramm in Höhe mehrerer Millionen Euro."],
    "fr": ["Les analystes tablaient sur un trimestre plus faible en raison d'une demande atone.",
           "Le groupe a indiqué qu'il poursuivrait ses investissements dans les services en ligne.",
           "Les investisseurs ont salué l'annonce, même si les marges restent sous pression.",
           "Le conseil a également approuvé un programme de rachat d'actions de plusieurs millions d'euros."],
    "es": ["Los analistas esperaban un trimestre más débil por la menor demanda de los consumidores.",
           "La compañía afirmó que seguirá invirtiendo en servicios en la nube y atención al cliente.",
           "Los inversores celebraron la noticia, aunque algunos advirtieron de la presión sobre márgenes.",
           "El consejo aprobó además un programa de recompra de acciones por varios millones de euros."],
    "ja": ["市場予想を上回る結果となり、個人消費の回復が業績を押し上げた。",
           "同社はクラウドサービスと顧客サポートへの投資を続ける方針を示した。",
           "投資家は発表を好感したが、利益率への圧力は続くとの見方もある。",
           "取締役会は数百億円規模の自社株買いも承認した。"],
    "zh": ["分析师此前预计该季度业绩将受到消费需求疲软和成本上升的拖累。",
           "公司表示将继续加大在云服务和客户支持方面的投入。",
           "投资者对这一消息表示欢迎，但也有人提醒利润率仍面临压力。",
           "董事会还批准了一项规模达数亿元的股票回购计划。"],
    "ko": ["증권가는 소비 둔화와 비용 증가로 실적이 부진할 것으로 예상했다.",
           "회사는 클라우드 서비스와 고객 지원에 대한 투자를 이어가겠다고 밝혔다.",
           "투자자들은 이번 발표를 반겼지만 수익성 압박은 계속될 것이라는 지적도 나왔다.",
           "이사회는 수천억 원 규모의 자사주 매입 계획도 승인했다."],
    "ru": ["Аналитики ожидали более слабого квартала из-за вялого потребительского спроса.",
           "Компания заявила, что продолжит инвестировать в облачные сервисы и поддержку клиентов.",
           "Инвесторы приветствовали новость, хотя некоторые предупредили о давлении на маржу.",
           "Совет директоров также одобрил программу обратного выкупа акций."],
    "pt": ["Os analistas esperavam um trimestre mais fraco devido à procura moderada dos consumidores.",
           "A empresa afirmou que continuará a investir em serviços de nuvem e no apoio ao cliente.",
           "Os investidores saudaram a notícia, embora alguns alertem para a pressão nas margens.",
           "O conselho aprovou ainda um programa de recompra de ações de vários milhões de euros."],
    "it": ["Gli analisti si aspettavano un trimestre più debole a causa della domanda fiacca.",
           "La società ha dichiarato che continuerà a investire nei servizi cloud e nell'assistenza.",
           "Gli investitori hanno accolto con favore la notizia, anche se i margini restano sotto pressione.",
           "Il consiglio ha inoltre approvato un piano di riacquisto di azioni proprie."],
}
ORGS = ("Acme Corp", "Globex", "Initech", "Umbrella Holdings", "Stark Retail", "Wayne Logistics", "Hooli",
        "Vandelay Industries", "Soylent Foods", "Tyrell Energy", "Cyberdyne Insurance", "Wonka Brands")

# Export-control stories: (language, company, template). Each cycle uses distinct companies and languages.
ALERTS = (
    ("en", "Nvidia", "US tightens export controls on Nvidia AI chips to China, requiring new licences ({tag})",
     "The Commerce Department's Bureau of Industry and Security said Nvidia must obtain an export licence "
     "before shipping its advanced AI chips to China, a new restriction announced on {tag}."),
    ("de", "ASML", "USA verschärfen Exportkontrollen: ASML darf Lithografie-Anlagen nicht mehr nach China "
     "liefern ({tag})", "Die niederländische Regierung und das US-Handelsministerium weiten die "
     "Exportbeschränkungen für Chipmaschinen von ASML aus; Lieferungen nach China brauchen eine Genehmigung."),
    ("zh", "SMIC", "美国商务部将中芯国际列入实体清单 加强芯片出口管制（{tag}）",
     "美国商务部工业与安全局宣布，将中芯国际列入实体清单，向其出口芯片制造设备需申请许可证。"),
    ("ja", "Tokyo Electron", "米政府、東京エレクトロンの半導体製造装置の対中輸出規制を強化（{tag}）",
     "米商務省は東京エレクトロンなどの半導体製造装置について、中国向け輸出に新たな許可を義務付けると発表した。"),
    ("fr", "AMD", "Washington durcit les contrôles à l'exportation des puces d'AMD vers la Chine ({tag})",
     "Le département américain du Commerce exige désormais une licence d'exportation pour les puces MI308 "
     "d'AMD destinées à la Chine, une nouvelle restriction."),
    ("ko", "Samsung Electronics", "미국, 삼성전자 반도체 장비 대중국 수출 통제 강화 ({tag})",
     "미국 상무부는 삼성전자 중국 공장에 대한 반도체 장비 수출 허가 요건을 강화한다고 밝혔다."),
    ("es", "Intel", "EE.UU. endurece los controles a la exportación de chips de Intel a China ({tag})",
     "El Departamento de Comercio exigirá una licencia de exportación para los procesadores de Intel "
     "destinados a China, según la nueva restricción."),
    ("ru", "Huawei", "США ужесточили экспортный контроль в отношении чипов для Huawei ({tag})",
     "Министерство торговли США расширило ограничения на экспорт полупроводников для Huawei, "
     "теперь поставки требуют лицензии."),
    ("pt", "Micron", "EUA apertam controles de exportação de chips de memória da Micron para a China ({tag})",
     "O Departamento de Comércio dos EUA passa a exigir licença de exportação para chips da Micron "
     "destinados à China."),
    ("it", "Applied Materials", "Gli Usa inaspriscono i controlli sulle esportazioni di macchinari per chip "
     "di Applied Materials verso la Cina ({tag})", "Il Dipartimento del Commercio richiederà una licenza di "
     "esportazione per le apparecchiature per semiconduttori di Applied Materials destinate alla Cina."),
)


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """One bench feed: where it is served and how it answers conditional requests."""

    index: int
    host: int  # served on 127.0.0.<host+1>: feeds spread over several hosts, as in the wild
    path: str
    lang: str
    mode: str  # "etag" (ETag + Last-Modified), "lastmod" (Last-Modified only), "none" (no validators)
    atom: bool


def plan_feeds(n: int, hosts: int, no_conditional: float, seed: int = 8) -> list[FeedPlan]:
    """The feed list: languages round-robin, a fraction without validators, one in five Atom."""
    rng = random.Random(seed)
    plans = []
    for i in range(n):
        roll = rng.random()
        mode = "none" if roll < no_conditional else ("lastmod" if roll < no_conditional + 0.2 else "etag")
        plans.append(FeedPlan(i, i % hosts, f"/feeds/{i:05d}.xml", LANGS[i % len(LANGS)], mode, i % 5 == 4))
    return plans


def background_item(feed: FeedPlan, serial: int, now: datetime) -> dict[str, str]:
    """An ordinary (never flagged) item: headline, 300-600 characters of HTML lede, tracked link."""
    rng = random.Random(feed.index * 100_003 + serial)
    lang = feed.lang
    title = rng.choice(HEADLINES[lang]).format(org=rng.choice(ORGS), n=rng.randint(2, 40))
    target = rng.randint(300, 600)
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < target:
        sentences.append(rng.choice(LEDES[lang]))
    text = " ".join(sentences)[:target]
    summary = (f'<p>{escape(text)}</p><p><a href="https://news{feed.host}.example/more/{serial}">'
               f"Read more &raquo;</a></p>")
    published = now - timedelta(minutes=17 * serial + rng.randint(0, 16))
    return _item(feed, serial, title, summary, published)


def alert_item(feed: FeedPlan, serial: int, story: int, cycle: int, now: datetime) -> dict[str, str]:
    """An export-control story (one of `ALERTS`), tagged with the cycle so its text is new."""
    _lang, _company, title, summary = ALERTS[story % len(ALERTS)]
    tag = f"c{cycle}-f{feed.index}"
    return _item(feed, serial, title.format(tag=tag), f"<p>{escape(summary.format(tag=tag))}</p>", now)


def _item(feed: FeedPlan, serial: int, title: str, summary: str, published: datetime) -> dict[str, str]:
    link = f"https://news{feed.host}.example/{feed.lang}/{feed.index}/{serial}?utm_source=rss&utm_medium=feed"
    return {"title": title, "summary": summary, "link": link, "guid": f"bench-{feed.index}-{serial}",
            "published": format_datetime(published.astimezone(UTC)), "iso": published.astimezone(UTC).isoformat()}


def render(feed: FeedPlan, items: list[dict[str, str]]) -> bytes:
    """The feed document: RSS 2.0 or Atom, UTF-8."""
    return (_atom(feed, items) if feed.atom else _rss(feed, items)).encode()


def _rss(feed: FeedPlan, items: list[dict[str, str]]) -> str:
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
             'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>',
             f"<title>Bench feed {feed.index}</title><link>https://news{feed.host}.example/</link>"
             f"<description>Bench feed {feed.index} ({feed.lang})</description><language>{feed.lang}</language>"]
    for it in items:
        parts.append(
            f"<item><title>{escape(it['title'])}</title><link>{escape(it['link'])}</link>"
            f'<guid isPermaLink="false">{it["guid"]}</guid><pubDate>{it["published"]}</pubDate>'
            f"<dc:creator>Staff</dc:creator><category>Business</category>"
            f"<description>{escape(it['summary'])}</description></item>\n"
        )
    parts.append("</channel></rss>")
    return "".join(parts)


def _atom(feed: FeedPlan, items: list[dict[str, str]]) -> str:
    updated = items[0]["iso"] if items else "2026-01-01T00:00:00+00:00"
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
             f'xml:lang="{feed.lang}"><title>Bench feed {feed.index}</title><id>urn:bench:{feed.index}</id>'
             f"<updated>{updated}</updated>"]
    for it in items:
        parts.append(
            f"<entry><title>{escape(it['title'])}</title><link href=\"{escape(it['link'])}\"/>"
            f"<id>{it['guid']}</id><updated>{it['iso']}</updated><author><name>Staff</name></author>"
            f'<summary type="html">{escape(it["summary"])}</summary></entry>\n'
        )
    parts.append("</feed>")
    return "".join(parts)


def changes(n: int, fraction: float, cycle: int, alerts: int, seed: int = 8) -> list[tuple[int, int | None]]:
    """Feeds that get a new item in change cycle `cycle`: (feed index, story number or None if ordinary)."""
    rng = random.Random(seed * 7919 + cycle)
    count = max(1, round(n * fraction)) if fraction > 0 else 0
    picked = rng.sample(range(n), min(n, count))
    stories = rng.sample(range(len(ALERTS)), min(alerts, len(ALERTS), len(picked)))
    return [(f, stories[k] if k < len(stories) else None) for k, f in enumerate(picked)]


def now_utc() -> datetime:
    return datetime.now(UTC)
