"""The export-control classifier: per-language fixtures, properties, and its vocabulary loader."""
# ruff: noqa: RUF001 -- the fixtures are real CJK text, full-width punctuation included

from __future__ import annotations

import pathlib
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.classify import Classifier

CONFIG = pathlib.Path(__file__).resolve().parent.parent / "config"
CLASSIFIER = Classifier.from_dir(CONFIG)  # built once: hypothesis calls it hundreds of times

# (id, title, summary, expected direction) - stories the classifier must flag. Written for these tests.
POSITIVES = [
    (
        "en-rule",
        "US tightens curbs on AI chip exports to China",
        "The Commerce Department's new rule bars shipments of advanced Nvidia and AMD accelerators.",
        "tightening",
    ),
    (
        "en-entity",
        "Washington adds 140 Chinese firms to trade blacklist",
        "The Entity List additions include chip equipment makers and Huawei suppliers.",
        "tightening",
    ),
    (
        "en-licence",
        "Nvidia gets US nod to resume H20 sales to China",
        "The company said the government assured it licences would be granted.",
        "easing",
    ),
    (
        "en-tools",
        "Japan widens export restrictions on chipmaking equipment",
        "Tokyo added 23 types of semiconductor tools to its list of items that need an export licence.",
        "tightening",
    ),
    (
        "en-amd",
        "AMD expects $800 million hit from new US licence requirement on MI308",
        "The chip designer said shipments to China now need a licence.",
        "tightening",
    ),
    (
        "en-rescind",
        "Trump administration scraps Biden-era AI diffusion rule",
        "Officials said a simpler replacement would follow.",
        "easing",
    ),
    (
        "en-china-gallium",
        "China bans exports of chipmaking minerals to the US",
        "Beijing tightened export controls on materials used in semiconductors.",
        "tightening",
    ),
    (
        "en-smuggling",
        "Two men charged with smuggling Nvidia GPUs to China in breach of export controls",
        "Prosecutors said the chips were routed through Malaysia.",
        "neutral",
    ),
    (
        "de-verbot",
        "USA verschärfen Exportbeschränkungen für KI-Chips nach China",
        "Das Handelsministerium weitet die Regeln auf weitere Nvidia-Modelle aus.",
        "tightening",
    ),
    (
        "de-asml",
        "Niederlande schränken Ausfuhr von ASML-Anlagen nach China ein",
        "Für bestimmte Lithografiesysteme ist künftig eine Genehmigung nötig.",
        "tightening",
    ),
    (
        "de-lockerung",
        "Washington lockert Exportkontrollen für Nvidia-Chips",
        "Nvidia darf den H20 wieder nach China liefern.",
        "easing",
    ),
    (
        "zh-s-control",
        "美国扩大对华芯片出口管制",
        "美国商务部将更多中国实体列入实体清单，限制先进半导体设备出口。",
        "tightening",
    ),
    ("zh-s-ease", "美方批准英伟达向中国出口H20芯片", "商务部已开始发放相关许可证。", "easing"),
    ("zh-t-control", "美國收緊AI晶片出口限制", "新規要求輝達與超微向中國出口先進晶片須取得許可。", "tightening"),
    (
        "zh-china-rule",
        "中国商务部宣布对镓锗相关物项实施出口管制",
        "公告称此举旨在维护国家安全，相关物项用于半导体制造。",
        "tightening",
    ),
    ("ja-kisei", "米政府、対中半導体輸出規制を強化", "エヌビディアの先端チップが新たに規制対象となる。", "tightening"),
    ("ja-nl", "オランダ、半導体製造装置の輸出管理を拡大", "ASMLの露光装置の一部で輸出許可が必要になる。", "tightening"),
    ("ja-ease", "米商務省、エヌビディアのH20の対中輸出を許可", "同社は中国向け出荷を再開する。", "easing"),
    (
        "ko-control",
        "미국, 대중국 반도체 수출 통제 강화",
        "상무부는 엔비디아 AI 칩의 중국 수출을 금지했다.",
        "tightening",
    ),
    (
        "ko-veu",
        "미 상무부, 삼성전자 중국 공장 장비 반입 허용 연장",
        "검증된 최종 사용자 지위를 유지하기로 했다.",
        "easing",
    ),
    (
        "ko-japan",
        "일본, 반도체 소재 3개 품목 수출규제 발동",
        "불화수소와 포토레지스트의 한국 수출이 개별 허가 대상이 됐다.",
        "tightening",
    ),
    (
        "fr-control",
        "Washington durcit les contrôles à l'exportation de puces vers la Chine",
        "Le département du Commerce ajoute de nouvelles restrictions sur les processeurs d'IA de Nvidia.",
        "tightening",
    ),
    (
        "fr-ease",
        "Nvidia autorisé à reprendre ses ventes de puces H20 en Chine",
        "Les licences d'exportation seront accordées, selon l'entreprise.",
        "easing",
    ),
    (
        "es-control",
        "EE.UU. endurece las restricciones a la exportación de chips a China",
        "El Departamento de Comercio amplía la lista de semiconductores sujetos a licencia.",
        "tightening",
    ),
    (
        "es-ease",
        "EE.UU. levanta el veto a la exportación de chips H20 de Nvidia a China",
        "La empresa podrá volver a vender sus procesadores.",
        "easing",
    ),
    (
        "it-control",
        "Gli Stati Uniti inaspriscono i controlli sulle esportazioni di chip verso la Cina",
        "Le nuove norme colpiscono Nvidia e AMD.",
        "tightening",
    ),
    (
        "nl-control",
        "Kabinet breidt exportbeperkingen voor chipmachines uit",
        "ASML heeft voor meer duv-machines een exportvergunning nodig.",
        "tightening",
    ),
    (
        "pt-control",
        "EUA ampliam restrições à exportação de chips para a China",
        "A medida atinge os processadores de IA da Nvidia.",
        "tightening",
    ),
    (
        "en-huawei-orders",
        "TSMC halts new Huawei orders after US rule change",
        "The foundry stopped taking orders after Washington moved to cut the company off from chip suppliers.",
        "tightening",
    ),
    (
        "en-can-sell",
        "Trump says Nvidia can sell H200 chips to China, with US taking a cut",
        "The decision marks a shift in policy.",
        "easing",
    ),
    (
        "ja-huawei",
        "米、ファーウェイへの半導体供給を事実上禁止",
        "米国製の装置を使った半導体のファーウェイ向け出荷に許可を義務付ける。",
        "tightening",
    ),
    (
        "ko-permit-required",
        "중국, 갈륨·게르마늄 수출 통제 시행",
        "반도체 소재로 쓰이는 두 금속을 수출하려면 허가를 받아야 한다.",
        "tightening",
    ),
    (
        "en-ai-rule",
        "US moves to expand AI export restrictions",
        "The proposal would create a new hierarchy of countries.",
        "tightening",
    ),
    (
        "en-enforcement",
        "Chip design firm pleads guilty over exports to Chinese military university",
        "The company admitted to violating US export controls and will pay $140 million.",
        "neutral",
    ),
    ("zh-t-huawei", "美國商務部將中芯國際列入實體清單", "美國企業向中芯出口須申請許可證。", "tightening"),
    (
        "ru-control",
        "США ужесточили экспортный контроль на поставки чипов в Китай",
        "Новые правила затронут ускорители Nvidia.",
        "tightening",
    ),
]

# (id, title, summary) - stories the classifier must leave alone, hard negatives first.
NEGATIVES = [
    (
        "en-earnings",
        "Nvidia beats estimates on record data-centre revenue",
        "Quarterly revenue rose 78% as demand for AI chips stayed strong.",
    ),
    (
        "en-tariff",
        "Trump threatens 100% tariffs on imported semiconductors",
        "Chipmakers that build plants in the US would be exempt.",
    ),
    (
        "en-stats",
        "South Korea's chip exports hit a record high in March",
        "Semiconductor exports rose 36% year-on-year, trade ministry data showed.",
    ),
    (
        "en-rare-earth",
        "China imposes export controls on rare earth magnets",
        "Carmakers warn of shortages; the industry is still recovering from a chip crunch.",
    ),
    ("en-arms", "Germany halts arms exports to the region", "The government will not approve new export licences."),
    (
        "en-antitrust",
        "China's market regulator opens antitrust probe into Qualcomm deal",
        "The SAMR said the acquisition may restrict competition.",
    ),
    (
        "en-patent",
        "Arm moves to cancel Qualcomm's architecture licence",
        "The dispute over Nuvia chip designs escalates.",
    ),
    ("en-launch", "Nvidia unveils Blackwell Ultra at GTC", "The chip ships in the second half of the year."),
    ("en-wheat", "India bans wheat exports to curb domestic prices", "The ban takes effect immediately."),
    (
        "en-procurement",
        "China bans Intel and AMD chips from government computers",
        "Procurement guidelines favour domestic processors.",
    ),
    (
        "de-earnings",
        "Infineon hebt Prognose nach starkem Quartal an",
        "Der Chipkonzern steigerte den Umsatz um 12 Prozent.",
    ),
    ("de-stats", "Taiwans Exporte steigen dank Halbleitern auf Rekordhoch", "Die Ausfuhren legten um 30 Prozent zu."),
    ("de-ruestung", "Bundesregierung verlängert Rüstungsexportstopp", "Neue Ausfuhren werden nicht genehmigt."),
    ("zh-earnings", "中芯国际第三季度营收同比增长", "公司预计第四季度收入环比增长。"),
    ("zh-stats", "韩国半导体出口额创新高", "海关数据显示，芯片出口同比增长40%。"),
    ("zh-rare-earth", "商务部对稀土相关技术实施出口管制", "公告自发布之日起施行。"),
    ("ja-earnings", "東京エレクトロン、通期の営業利益予想を上方修正", "生成AI向けの半導体製造装置の需要が堅調。"),
    ("ja-stats", "韓国の半導体輸出額、過去最高を更新", "前年同月比で2割増えた。"),
    ("ko-earnings", "삼성전자 3분기 영업이익 10조 돌파", "메모리 반도체 가격 상승이 실적을 견인했다."),
    ("ko-stats", "10월 반도체 수출 역대 최대", "수출액이 전년 동월 대비 20% 증가했다."),
    (
        "fr-earnings",
        "Nvidia publie un chiffre d'affaires record au troisième trimestre",
        "Le fabricant de puces dépasse les prévisions.",
    ),
    (
        "fr-arms",
        "Exportations d'armes : le rapport annuel se fait attendre",
        "Les licences d'exportation restent opaques.",
    ),
    ("es-stats", "Las exportaciones de chips de Taiwán marcan un récord", "Las ventas al exterior crecieron un 40%."),
    ("nl-asml", "ASML opent nieuwe vestiging in Eindhoven", "De chipmachinefabrikant wil uitbreiden."),
    (
        "en-stats-despite",
        "South Korea's chip exports to China rose in September despite US restrictions",
        "Shipments of memory chips jumped 30%.",
    ),
    (
        "en-summons",
        "China summons Nvidia over H20 security risks",
        "The regulator asked about backdoor risks in chips designed to comply with US export controls.",
    ),
    (
        "de-earnings-despite",
        "Nvidia: Quartalsumsatz steigt trotz Exportbeschränkungen",
        "Der Konzern übertraf die Erwartungen.",
    ),
    ("zh-stats-ai", "中国AI芯片出口激增", "海关数据显示出口同比增长。"),
    ("ja-stats-rush", "日本の半導体製造装置の対中輸出が急増", "規制強化を前に駆け込み需要。"),
    ("zh-summons", "国家网信办约谈英伟达", "要求说明H20芯片漏洞后门安全风险问题。"),
    ("ru-fuel", "Правительство продлило запрет на экспорт бензина", "Ограничения касаются всех производителей."),
]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return CLASSIFIER


class TestFixtures:
    @pytest.mark.parametrize(
        ("title", "summary", "direction"), [c[1:] for c in POSITIVES], ids=[c[0] for c in POSITIVES]
    )
    def test_flags_export_control_story(self, classifier: Classifier, title: str, summary: str, direction: str) -> None:
        """An export-control story about chips is flagged, with its direction and reasons."""
        verdict = classifier.classify(title, summary)
        assert verdict.flag, verdict
        assert verdict.direction == direction, verdict
        assert verdict.reasons

    @pytest.mark.parametrize(("title", "summary"), [c[1:] for c in NEGATIVES], ids=[c[0] for c in NEGATIVES])
    def test_leaves_other_news_alone(self, classifier: Classifier, title: str, summary: str) -> None:
        """Chip news without export controls, and export news without chips, is not flagged."""
        verdict = classifier.classify(title, summary)
        assert not verdict.flag, verdict


def _fold_width(text: str) -> str:
    """Turn ASCII letters and digits into their full-width forms (what some CJK outlets publish)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


class TestProperties:
    @settings(max_examples=200, deadline=None)
    @given(st.text(), st.text(), st.one_of(st.none(), st.text(max_size=5)))
    def test_arbitrary_unicode_never_crashes(self, title: str, summary: str, lang: str | None) -> None:
        """Any Unicode title, summary and language give a verdict with a score in 0..1."""
        verdict = CLASSIFIER.classify(title, summary, lang)
        assert 0.0 <= verdict.score <= 1.0
        assert verdict.flag == (verdict.score >= CLASSIFIER.threshold)

    @settings(max_examples=60, deadline=None)
    @given(st.sampled_from(POSITIVES + [(*n, "") for n in NEGATIVES]), st.sampled_from(["upper", "lower", "title"]))
    def test_letter_case_does_not_change_the_verdict(self, case: tuple[str, ...], how: str) -> None:
        """Upper, lower or title case give the same verdict as the original."""
        _, title, summary, *_ = case
        change = getattr(str, how)
        assert CLASSIFIER.classify(change(title), change(summary)) == CLASSIFIER.classify(title, summary)

    @pytest.mark.parametrize("case", POSITIVES + [(*n, "") for n in NEGATIVES], ids=lambda c: c[0])
    def test_full_width_forms_do_not_change_the_verdict(self, case: tuple[str, ...]) -> None:
        """Full-width Latin letters and digits give the same verdict as half-width ones."""
        _, title, summary, *_ = case
        wide = CLASSIFIER.classify(_fold_width(title), _fold_width(summary))
        assert wide == CLASSIFIER.classify(title, summary)

    @settings(max_examples=100, deadline=None)
    @given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
    def test_mixed_text_around_a_story_keeps_scores_in_range(self, noise: str) -> None:
        """Noise appended to a real story never breaks the classifier and keeps the NFKC invariant."""
        title = POSITIVES[0][1] + noise
        verdict = CLASSIFIER.classify(title, unicodedata.normalize("NFKC", noise))
        assert 0.0 <= verdict.score <= 1.0


class TestVerdict:
    def test_names_companies_tickers_and_products(self, classifier: Classifier) -> None:
        """Products map to their maker's ticker; every name is reported once."""
        verdict = classifier.classify("US bars Nvidia H20 and AMD MI308 exports to China", "Nvidia said the H20 ...")
        assert verdict.companies == ("Nvidia", "AMD")
        assert verdict.products == ("H20", "MI308")
        assert verdict.tickers == ("NVDA", "AMD")

    def test_a_product_alone_brings_its_makers_ticker(self, classifier: Classifier) -> None:
        """A story naming only the H20 still quotes Nvidia's ticker."""
        verdict = classifier.classify("US requires licence for H20 exports to China")
        assert verdict.flag
        assert (verdict.companies, verdict.products, verdict.tickers) == ((), ("H20",), ("NVDA",))

    def test_reasons_are_short_enough_for_a_phone(self, classifier: Classifier) -> None:
        """Each reason is one short line naming the evidence."""
        verdict = classifier.classify(*POSITIVES[0][1:3])
        assert all(len(reason) <= 80 and "\n" not in reason for reason in verdict.reasons)
        assert any(reason.startswith("control:") for reason in verdict.reasons)

    def test_threshold_decides_the_flag(self) -> None:
        """A stricter threshold turns a borderline score into no flag."""
        strict = Classifier.from_dir(CONFIG, threshold=0.99)
        assert not strict.classify(*POSITIVES[0][1:3]).flag

    def test_language_hint_does_not_matter(self, classifier: Classifier) -> None:
        """A wrong language tag does not hide a story: every vocabulary is always searched."""
        title, summary = POSITIVES[0][1:3]
        assert classifier.classify(title, summary, "ja") == classifier.classify(title, summary, "en")


class TestVocabularyLoader:
    def _config(self, tmp_path: pathlib.Path, watchlist: str, lexicon: str) -> pathlib.Path:
        (tmp_path / "lexicon").mkdir()
        (tmp_path / "watchlist.toml").write_text(watchlist, encoding="utf-8")
        (tmp_path / "lexicon" / "xx.toml").write_text(lexicon, encoding="utf-8")
        return tmp_path

    def test_unknown_category_names_file_and_key(self, tmp_path: pathlib.Path) -> None:
        """A misspelt list name is reported with its file and key."""
        config = self._config(tmp_path, "", 'exprot = ["export*"]\n')
        with pytest.raises(ValueError, match=r"xx\.toml: exprot: unknown category"):
            Classifier.from_dir(config)

    def test_company_without_name_names_the_table(self, tmp_path: pathlib.Path) -> None:
        """A company table without a name is reported with its index."""
        config = self._config(tmp_path, '[[company]]\nticker = "X"\n', 'export = ["export*"]\n')
        with pytest.raises(ValueError, match=r"watchlist\.toml: company\[0\]\.name"):
            Classifier.from_dir(config)

    def test_bad_wildcard_is_rejected(self, tmp_path: pathlib.Path) -> None:
        """A '*' in the middle of a word is reported, not silently ignored."""
        config = self._config(tmp_path, "", 'export = ["ex*port"]\n')
        with pytest.raises(ValueError, match=r"export: unusable term"):
            Classifier.from_dir(config)

    def test_broken_toml_names_the_file(self, tmp_path: pathlib.Path) -> None:
        """A syntax error in a data file is reported with the file."""
        config = self._config(tmp_path, "", "export = [\n")
        with pytest.raises(ValueError, match=r"xx\.toml"):
            Classifier.from_dir(config)

    def test_a_new_alias_is_picked_up(self, tmp_path: pathlib.Path) -> None:
        """An operator can add a company with an alias and a control word, and stories about it flag."""
        config = self._config(
            tmp_path,
            '[[company]]\nname = "Acme Chips"\nticker = "ACME"\naliases = ["acme*"]\n',
            'control = ["export ban"]\ntighten = ["imposes"]\n',
        )
        verdict = Classifier.from_dir(config).classify("Ruritania imposes export ban on ACME processors")
        assert verdict.flag
        assert verdict.tickers == ("ACME",)
