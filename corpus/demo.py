"""Deterministic synthetic mediation metadata for the demo corpus.

The demo texts are court-side descriptions without any mediation record. This module invents
one: an organisation tree, mediators, experts, dates, outcomes, parties' contact data,
follow-up of unsuccessful cases, exemplars, quality reviews and learning material. Every
invented case field is listed in `DisputeCase.synthetic_fields`; every invented row has
`synthetic=True` (parties excepted: their invented fields are named in the case's list).
Per-case values come from a hash of the case's external id, so neither reruns nor row order
change them.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from casekb.config import DEFAULT_CATEGORIES
from kb.models import (DisputeCase, ExemplarMark, Expert, LearningMaterial, Mediator, Organisation,
                       Party, QualityReview, UnsuccessfulCaseTracking)

# --- the synthetic world -------------------------------------------------------------------

CITY = "瓯江市"
CITY_CODE = "瓯"
COMMITTEE = "人民调解委员会"
#: county / district -> administrative area code used in synthetic ID numbers (33 = Zhejiang,
#: 99 = no real prefecture, so the numbers are well-formed but belong to nobody)
COUNTIES = {"鹿溪区": "339902", "江湾区": "339903", "松台县": "339921", "云岭县": "339922"}
#: first two characters of each name are unique: they become the case-number code
TOWNSHIPS = ("五溪街道", "南塘街道", "七星镇", "藤桥镇", "云雾镇", "潘岭街道",
             "仰山镇", "双屿街道", "山福镇", "梧桐镇", "丽岙镇", "岩头镇")
VILLAGES = ("上河村", "下洋村", "石门村", "枫林村", "桥头村", "溪口村", "竹园村", "杨柳村", "东岙村",
            "西岸村", "南山村", "北垟村", "后垟村", "前街村", "花坦村", "塘下村", "新桥村", "白石村",
            "茶山村", "岭根村", "金竹村", "青岩村", "黄坦村", "湖岭村", "沙坑村", "龙潭村", "梅岙村",
            "桐岭村", "大岙村", "小溪村", "半岭村", "岙底村", "水碓村", "林垟村", "朱家村", "徐岙村")
#: category -> (industry committee field, case-number code)
INDUSTRY = {"医疗": ("医疗纠纷", "医"), "劳动争议": ("劳动争议", "劳"),
            "道路交通事故": ("道路交通事故", "交"), "物业": ("物业纠纷", "物")}

MEDIATORS = 40
EXPERT_FIELDS = {
    "律师": (("一级律师", "二级律师", "执业律师"), ("瓯江正言律师事务所", "瓯江明理律师事务所")),
    "医生": (("主任医师", "副主任医师"), ("瓯江市人民医院", "瓯江市中医院")),
    "工程师": (("高级工程师", "工程师"), ("瓯江市建设工程质量检测中心", "瓯江市交通事故鉴定所")),
    "会计师": (("注册会计师", "高级会计师"), ("瓯江信诚会计师事务所",)),
    "心理咨询师": (("二级心理咨询师", "三级心理咨询师"), ("瓯江市心理健康服务中心",)),
}
EXPERTS = 12

FAKE_SURNAMES = "王李张刘陈杨黄赵吴周徐孙朱胡林郑叶潘金蔡"
FAKE_GIVEN = "建国丽华明芳伟静志强秀英海燕文军晓红永平德胜春梅玉兰立新雪松"
STREETS = ("人民路", "解放街", "江滨路", "学院路", "新城大道", "府前街", "望江路", "锦绣路")
OCCUPATIONS = ("农民", "个体工商户", "公司职员", "务工人员", "退休人员", "教师", "司机", "无业")
ETHNICITIES = (("汉族", 92), ("畲族", 5), ("回族", 2), ("苗族", 1))
#: categories whose synthetic respondent is an organisation, and the kind of organisation
ORG_RESPONDENTS = {"劳动争议": "有限公司", "医疗": "医院", "物业": "物业服务有限公司", "消费": "商贸有限公司"}
BRANDS = ("恒达", "信诚", "华泰", "永安", "盛源", "东瓯")

# --- the mediation record ------------------------------------------------------------------

#: the three years before the demo's "today"
PERIOD_END = dt.date(2026, 10, 31)
PERIOD_START = dt.date(2023, 11, 1)
MAX_DAYS_TO_CLOSE = 45
INTAKES = (("申请调解", 55), ("主动调解", 30), ("委托移送", 15))
OUTCOMES = (("成功", 95), ("不成功", 3.5), ("终止", 1.5))
#: outcomes after which the dispute goes elsewhere and is tracked
UNRESOLVED = ("不成功", "终止")
PERFORMANCE = (("已履行", 80), ("分期履行中", 15), ("未履行", 5))
SATISFACTION_SETTLED = ((5, 55), (4, 35), (3, 7), (2, 2), (1, 1))
SATISFACTION_UNSETTLED = ((5, 10), (4, 25), (3, 35), (2, 20), (1, 10))
#: fields an imported record may already have: a case holding any of them is real, not ours
MEDIATION_FIELDS = ("case_number", "intake", "region", "organisation_id", "received_on", "closed_on",
                    "outcome", "agreement_terms", "agreed_amount", "performance", "satisfaction")

DESTINATIONS = (("court", 50), ("arbitration", 15), ("petition", 10), ("administrative", 15),
                ("other", 10))
LATER_RESULTS = {
    "court": ("法院诉前调解成功", "法院判决支持部分诉讼请求", "法院判决驳回诉讼请求", "法院审理中"),
    "arbitration": ("仲裁委调解结案", "仲裁裁决支持部分请求", "仲裁审理中"),
    "petition": ("信访部门转办，已书面答复", "信访事项办结，当事人息访"),
    "administrative": ("主管部门责令整改，已处理完毕", "行政机关处理中"),
    "other": ("当事人自行和解", "当事人未再主张权利"),
}

EXEMPLAR_SHARE, EXEMPLAR_MAX = 0.18, 300     # about 300 of the 1,694 demo cases
REVIEW_SHARE, REVIEW_MAX = 0.12, 200         # about 200 of them
TECHNIQUES = ("情理法结合", "背对背调解", "专家参与", "冷处理", "案例引导", "换位思考", "亲情感化", "多元联调")
REVIEW_ITEMS = ("卷宗规范", "事实清楚", "程序合法", "协议可行", "回访满意")   # 20 points each
REVIEW_BANDS = (((17, 20), 60), ((12, 18), 35), ((6, 13), 5))
MATERIALS = 20
MATERIAL_KINDS = {"law": "相关法律规定摘编", "guide": "调解工作指引",
                  "training-note": "调解培训笔记", "case-analysis": "优秀案例评析"}

# --- finding parties in court texts --------------------------------------------------------

ROLE = r"(?P<role>被上诉人|上诉人|被申请人|申请人|第三人|原告|被告)(?:[（(][^）)]{1,8}[）)])?"
#: surnames trusted for plain names; ambiguous ones (方 "side", 曾 "once", 于 "at") are left out
PLAIN_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭肖田董袁潘蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵钱严覃武戴"
    "莫孔汤温康施牛樊葛邢齐易乔伍庞颜倪庄聂章鲁岳翟殷詹欧耿兰焦俞左柳甘祝包宁舒阮柯纪梅童凌毕季裴"
    "霍涂苗盛曲翁冉骆蓝游辛靳柴蒙鲍喻祁蒲滕屈饶牟艾尤穆卓缪简麦褚娄窦戚岑卜冷晏卫米柏宗瞿桂佟臧闵"
    "苟邬卞姬仇栾隋刁沙荣巫寇桑郎甄丛仲虞敖巩佘池查迟邝洪")
#: anonymised names (张某甲, 曹0, 张x1) are unmistakable, so any surname goes, bar these words
NOT_SURNAMES = "某自公以该本其原被双对我他她"
#: words a plain name pattern also matches after a role (原告陈述, 被告施工, 原告陆续...)
NOT_NAMES = ("陈述", "施工", "施救", "施暴", "陆续", "付款", "任何", "任职", "任司", "何时", "余额",
             "冷库", "包扎", "包括", "左手", "林地", "查询", "查阅", "钱款", "迟迟", "仲裁")
NAME_END = (r"(?=诉称|辩称|述称|答辩|陈述|称[:：，,]|与|因|向|于|的|在|系|和|及|自|从|共同|提出|不服"
            r"|同意|未|已|是|对|为|按|将|[、，,。；;：:）)\s]|$)")
#: a plain name's tail holds no anonymisation mark and stops before verbs that follow names
#: (王萍辩称, 石微应当, 刘斌存在, 刘歌作为)
PLAIN_TAIL = r"(?:(?![某甲乙丙丁诉辩称述应存作])[\u4e00-\u9fa5]){1,2}"
MARKED_NAME = rf"(?![{NOT_SURNAMES}])[\u4e00-\u9fa5](?:某某?[甲乙丙丁]?|[甲乙丙丁]|x{{1,3}}\d{{0,2}}|\d{{1,2}})"
PERSON_PARTY = re.compile(
    rf"{ROLE}(?P<name>(?:{MARKED_NAME})|[{PLAIN_SURNAMES}]{PLAIN_TAIL}){NAME_END}")
ORG_PARTY = re.compile(ROLE + r"(?P<name>[\u4e00-\u9fa5]{1,15}?(?:医院)?"
                       r"(?:有限责任公司|股份有限公司|有限公司|公司|银行|信用社|合作社|农信社|旅行社|厂))" + NAME_END)
#: an organisation "name" holding these is a clause, not a name (原告通过银行, 被告违反了公司)
ORG_NOISE = ("原告", "被告", "申请人", "上诉人", "第三人", "与", "向", "的", "在", "于", "系", "了", "该",
             "其", "是", "称", "以", "没", "未", "通过", "名下", "下属", "要求", "主张", "提供", "提交", "申请",
             "证明", "根据", "按照", "依法", "违反", "进入", "就职", "无法", "委托", "委派", "同意", "拥有",
             "租赁", "应聘", "单方", "单位", "存入", "偿还", "前述", "受让", "通知", "应当", "严重", "原名",
             "名称", "归还", "抵押", "来到", "家公司")
#: nor does a company name start with these prepositions and conjunctions
ORG_NOT_FIRST = "为对到至将即叫和及等虽均仍现从由把被"
MAX_PARTIES = 6

MONEY = re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(万)?元")
MAX_AMOUNT = Decimal("999999999999.99")    # what Numeric(14, 2) holds


@dataclass(frozen=True)
class DemoSummary:
    """Rows added by one call of `add_demo_metadata`."""
    organisations: int = 0
    mediators: int = 0
    experts: int = 0
    cases: int = 0
    parties: int = 0
    unsuccessful: int = 0
    exemplars: int = 0
    reviews: int = 0
    materials: int = 0


class FoundParty(NamedTuple):
    role: str
    kind: str
    name: str


def add_demo_metadata(session: Session, seed: int = 20241) -> DemoSummary:
    """Give every case without a mediation record a deterministic synthetic one."""
    rng = random.Random(seed)
    built = _existing_tree(session) is None
    if built:
        _build_tree(session, rng)
    tree = _Tree.load(session)
    mediators = experts = 0
    if built:
        mediators = len(_add_mediators(session, tree, rng))
        experts = len(_add_experts(session, rng))
        tree = _Tree.load(session)

    cases = [case for case in session.scalars(select(DisputeCase).order_by(DisputeCase.id))
             if _lacks_mediation_record(case)]
    parties = sum(_fill_case(session, case, tree, seed) for case in cases)
    _number_cases(session, cases, tree)
    session.flush()
    unsuccessful = _track_unsuccessful(session, cases, seed)
    exemplars = _mark_exemplars(session, cases, seed)
    reviews = _review_quality(session, cases, seed)
    materials = _write_materials(session, seed)
    session.flush()
    return DemoSummary(organisations=len(tree.orgs) if built else 0, mediators=mediators,
                       experts=experts, cases=len(cases), parties=parties, unsuccessful=unsuccessful,
                       exemplars=exemplars, reviews=reviews, materials=materials)


def extract_parties(text: str) -> list[FoundParty]:
    """Parties named right after a role word (原告张某甲, 被告五金公司), in order of appearance."""
    by_start = {}
    # persons go last so that they win a tie: 被告洪金雁为宇庭公司 names a person, not a company
    for kind, pattern in (("organisation", ORG_PARTY), ("person", PERSON_PARTY)):
        for match in pattern.finditer(text):
            name = match.group("name")
            if _plausible_name(kind, name):
                by_start[match.start()] = FoundParty(match.group("role"), kind, name)
    parties, seen = [], set()
    for _, party in sorted(by_start.items()):
        if party.name not in seen:
            seen.add(party.name)
            parties.append(party)
    return parties[:MAX_PARTIES]


def first_amount(text: str) -> Decimal | None:
    """The first sum of money in the text (50000元, 3万元 -> 30000), in yuan."""
    match = MONEY.search(text)
    if not match:
        return None
    value = Decimal(match.group(1).replace(",", "") + (match.group(2) or ""))
    if match.group(3):
        value *= 10_000
    value = value.quantize(Decimal("0.01"))
    return value if 0 < value <= MAX_AMOUNT else None


# --- organisations, mediators, experts -----------------------------------------------------

class _Tree:
    """The synthetic organisations and mediators, with the look-ups case generation needs."""

    def __init__(self, orgs: list[Organisation], mediators: list[Mediator]):
        self.orgs = {org.id: org for org in orgs}
        self.counties = [org for org in orgs if org.level == "county"]
        self.industry = {category: org for org in orgs if org.level == "industry"
                         for category, (field, _) in INDUSTRY.items() if _place(org) == CITY + field}
        self.mediators = defaultdict(list)
        for mediator in mediators:
            self.mediators[mediator.organisation_id].append(mediator)

    @classmethod
    def load(cls, session: Session) -> _Tree:
        orgs = session.scalars(select(Organisation).where(Organisation.synthetic).order_by(Organisation.id))
        mediators = session.scalars(select(Mediator).where(Mediator.synthetic).order_by(Mediator.id))
        return cls(list(orgs), list(mediators))

    def local_units(self, county: Organisation) -> tuple[list[Organisation], list[Organisation]]:
        """The township and village committees of a county."""
        below = [org for org in self.orgs.values() if org.path.startswith(county.path)]
        return ([org for org in below if org.level == "township"],
                [org for org in below if org.level == "village"])

    def mediators_near(self, org: Organisation) -> list[Mediator]:
        """The committee's own mediators, else those of the nearest committee above it."""
        for org_id in reversed(org.ancestor_ids()):
            if self.mediators[org_id]:
                return self.mediators[org_id]
        return []

    def case_number_code(self, org: Organisation) -> str:
        """瓯 + county initial + committee code, e.g. 瓯鹿上河; industry committees: 瓯医."""
        if org.level == "industry":
            return CITY_CODE + next(code for field, code in INDUSTRY.values()
                                    if _place(org) == CITY + field)
        county = next((self.orgs[i] for i in org.ancestor_ids() if self.orgs[i].level == "county"),
                      None)
        own = _place(org)[:2] if org.level in ("township", "village") else ""
        return CITY_CODE + (_place(county)[0] if county else "") + own


def _place(org: Organisation) -> str:
    return org.name.removesuffix(COMMITTEE)


def _existing_tree(session: Session) -> Organisation | None:
    return session.scalar(select(Organisation).where(Organisation.synthetic, Organisation.level == "city"))


def _add_organisation(session: Session, place: str, level: str,
                      parent: Organisation | None) -> Organisation:
    """A committee row whose path needs its own id, hence the flush."""
    org = Organisation(name=place + COMMITTEE, level=level, parent=parent, synthetic=True)
    session.add(org)
    session.flush()
    org.path = f"{parent.path if parent else '/'}{org.id}/"
    return org


def _build_tree(session: Session, rng: random.Random) -> None:
    """City, its counties, their townships and villages, and the city's industry committees."""
    city = _add_organisation(session, CITY, "city", None)
    townships = iter(rng.sample(TOWNSHIPS, len(TOWNSHIPS)))
    villages = iter(rng.sample(VILLAGES, len(VILLAGES)))
    for county_name in COUNTIES:
        county = _add_organisation(session, county_name, "county", city)
        for _ in range(rng.randint(2, 3)):
            township = _add_organisation(session, next(townships), "township", county)
            for _ in range(rng.randint(2, 3)):
                _add_organisation(session, next(villages), "village", township)
    for field, _ in INDUSTRY.values():
        _add_organisation(session, CITY + field, "industry", city)


def _add_mediators(session: Session, tree: _Tree, rng: random.Random) -> list[Mediator]:
    """Two per industry committee, one per county and township, the rest in villages."""
    by_level = defaultdict(list)
    for org in tree.orgs.values():
        by_level[org.level].append(org)
    homes = by_level["industry"] * 2 + by_level["county"] + by_level["township"]
    homes += [rng.choice(by_level["village"]) for _ in range(MEDIATORS - len(homes))]
    industry_category = {org.id: category for category, org in tree.industry.items()}
    mediators = []
    for org in homes:
        own = industry_category.get(org.id)
        others = [c for c in DEFAULT_CATEGORIES if c != own]
        specialities = ([own] if own else []) + rng.sample(others, rng.randint(0 if own else 1, 2))
        mediators.append(Mediator(
            name=_person_name(rng), organisation_id=org.id, specialities=specialities,
            full_time=org.level in ("industry", "county") or rng.random() < 0.2,
            gender=rng.choice("男女"), birth_year=rng.randint(1958, 1995), phone=_mobile(rng),
            synthetic=True))
    session.add_all(mediators)
    session.flush()
    return mediators


def _add_experts(session: Session, rng: random.Random) -> list[Expert]:
    """Experts of every field in turn, so each field is represented."""
    fields = list(EXPERT_FIELDS)
    experts = []
    for i in range(EXPERTS):
        field = fields[i % len(fields)]
        titles, affiliations = EXPERT_FIELDS[field]
        experts.append(Expert(name=_person_name(rng), field=field, title=rng.choice(titles),
                              affiliation=rng.choice(affiliations), phone=_mobile(rng), synthetic=True))
    session.add_all(experts)
    return experts


# --- cases ---------------------------------------------------------------------------------

def _lacks_mediation_record(case: DisputeCase) -> bool:
    """Not yet given synthetic metadata, and no real metadata that ours would overwrite."""
    return not case.synthetic_fields and all(getattr(case, f) is None for f in MEDIATION_FIELDS)


def _case_rng(seed: int, *parts: str) -> random.Random:
    """A generator owned by one case (and purpose), so results ignore row order."""
    return random.Random(_stable_hash(seed, *parts))


def _stable_hash(seed: int, *parts: str) -> int:
    digest = hashlib.sha256("/".join((str(seed), *parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _weighted(rng: random.Random, options):
    values, weights = zip(*options)
    return rng.choices(values, weights)[0]


def _fill_case(session: Session, case: DisputeCase, tree: _Tree, seed: int) -> int:
    """Sets the case's synthetic mediation record and parties; returns the parties added."""
    rng = _case_rng(seed, case.external_id)
    county = rng.choice(tree.counties)
    org = tree.industry.get(case.category) or _local_committee(county, tree, rng)
    received = PERIOD_START + dt.timedelta(days=rng.randrange((PERIOD_END - PERIOD_START).days + 1))
    closed = received + dt.timedelta(days=rng.randint(1, MAX_DAYS_TO_CLOSE))
    if closed > PERIOD_END:     # received lately: mediation still under way
        closed = None
    outcome = _weighted(rng, OUTCOMES) if closed else None
    settled = outcome == "成功"
    amount = first_amount(case.facts) if settled else None
    near = tree.mediators_near(org)
    values = {
        "organisation": org, "region": _place(county), "intake": _weighted(rng, INTAKES),
        "received_on": received, "closed_on": closed, "outcome": outcome,
        "mediators": rng.sample(near, min(len(near), rng.choice((1, 1, 2)))) or None,
        "agreed_amount": amount,
        "agreement_terms": _agreement_terms(case, amount, closed) if settled else None,
        "performance": _weighted(rng, PERFORMANCE) if settled else None,
        "satisfaction": _weighted(rng, SATISFACTION_SETTLED if settled else SATISFACTION_UNSETTLED)
        if closed else None,
    }
    fields = [name for name, value in values.items() if value is not None]
    for name in fields:
        setattr(case, name, values[name])
    parties, invented = _parties(case, rng, _place(county), received)
    session.add_all(parties)
    case.synthetic_fields = fields + ["case_number", "party_details"] + (["parties"] if invented else [])
    return len(parties)


def _local_committee(county: Organisation, tree: _Tree, rng: random.Random) -> Organisation:
    """Most disputes are settled in the village; the rest go to the township."""
    townships, villages = tree.local_units(county)
    return rng.choice(villages if rng.random() < 0.7 else townships)


def _agreement_terms(case: DisputeCase, amount: Decimal | None, closed: dt.date) -> str:
    if amount is None:
        return f"经调解，双方就{case.cause or case.category}自愿达成和解，互谅互让，今后不再因此事发生争执。"
    due = closed + dt.timedelta(days=30)
    return (f"经调解，双方自愿达成协议：被申请人于{due.year}年{due.month}月{due.day}日前向申请人支付"
            f"人民币{amount}元，双方就本纠纷再无其他争议。")


def _number_cases(session: Session, cases: list[DisputeCase], tree: _Tree) -> None:
    """Case numbers count per committee and year, in order of receipt."""
    taken = Counter(
        (org_id, received.year) for org_id, received in session.execute(
            select(DisputeCase.organisation_id, DisputeCase.received_on)
            .where(DisputeCase.case_number.is_not(None), DisputeCase.organisation_id.is_not(None))))
    for case in sorted(cases, key=lambda c: (c.received_on, c.external_id)):
        key = (case.organisation.id, case.received_on.year)
        taken[key] += 1
        code = tree.case_number_code(case.organisation)
        case.case_number = f"（{case.received_on.year}）{code}人调字第{taken[key]}号"


# --- parties -------------------------------------------------------------------------------

def _plausible_name(kind: str, name: str) -> bool:
    if kind == "organisation":
        return name[0] not in ORG_NOT_FIRST and not any(word in name for word in ORG_NOISE)
    return not name.startswith(NOT_NAMES)


def _parties(case: DisputeCase, rng: random.Random, region: str,
             received: dt.date) -> tuple[list[Party], bool]:
    """Parties found in the text, else invented ones; True when the names are invented."""
    found = extract_parties(case.facts)
    invented = not found
    if invented:
        respondent = ORG_RESPONDENTS.get(case.category)
        found = [FoundParty("申请人", "person", _person_name(rng)),
                 FoundParty("被申请人", "organisation", CITY[:2] + rng.choice(BRANDS) + respondent)
                 if respondent else FoundParty("被申请人", "person", _person_name(rng))]
    parties = [Party(case_id=case.id, role=p.role, kind=p.kind, name=p.name, phone=_mobile(rng),
                     address=_address(rng, region), **(_personal_details(rng, region, received)
                                                         if p.kind == "person" else {}))
               for p in found]
    return parties, invented


def _personal_details(rng: random.Random, region: str, received: dt.date) -> dict:
    sex = rng.choice("男女")
    age = rng.randint(22, 75)
    birthday = dt.date(received.year - age, rng.randint(1, 12), rng.randint(1, 28))
    return {"sex": sex, "age": age, "ethnicity": _weighted(rng, ETHNICITIES),
            "occupation": rng.choice(OCCUPATIONS),
            "id_number": _id_number(rng, COUNTIES[region], birthday, sex)}


def _id_number(rng: random.Random, area: str, birthday: dt.date, sex: str) -> str:
    """An 18-character resident ID with a valid ISO 7064 MOD 11-2 check character."""
    sex_digit = rng.choice("13579" if sex == "男" else "02468")
    body = f"{area}{birthday:%Y%m%d}{rng.randint(0, 99):02d}{sex_digit}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11]


def _mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3578')}{rng.randrange(10**9):09d}"


def _address(rng: random.Random, region: str) -> str:
    return f"{CITY}{region}{rng.choice(STREETS)}{rng.randint(1, 300)}号"


def _person_name(rng: random.Random) -> str:
    return rng.choice(FAKE_SURNAMES) + "".join(rng.sample(FAKE_GIVEN, rng.randint(1, 2)))


# --- unsuccessful cases, exemplars, reviews, learning material ------------------------------

def _track_unsuccessful(session: Session, cases: list[DisputeCase], seed: int) -> int:
    """Where each unresolved dispute went next: labour disputes go to arbitration first by law."""
    unresolved = [case for case in cases if case.outcome in UNRESOLVED]
    for case in unresolved:
        rng = _case_rng(seed, "tracking", case.external_id)
        destination = "arbitration" if case.category == "劳动争议" else _weighted(rng, DESTINATIONS)
        session.add(UnsuccessfulCaseTracking(
            case_id=case.id, destination=destination, synthetic=True,
            referred_on=min(case.closed_on + dt.timedelta(days=rng.randint(1, 20)), PERIOD_END),
            later_result=rng.choice(LATER_RESULTS[destination])))
    return len(unresolved)


def _spread_over_categories(cases: Iterable[DisputeCase], quota: int, seed: int,
                            purpose: str) -> list[DisputeCase]:
    """Cases taken round-robin over categories, each in hash order, so all are represented."""
    queues = defaultdict(list)
    for case in sorted(cases, key=lambda c: _stable_hash(seed, purpose, c.external_id)):
        queues[case.category].append(case)
    ordered = [queues[category] for category in sorted(queues)]
    picked = []
    for rank in range(max(map(len, ordered), default=0)):
        picked += [queue[rank] for queue in ordered if rank < len(queue)]
    return picked[:quota]


def _mark_exemplars(session: Session, cases: list[DisputeCase], seed: int) -> int:
    """Exemplars are chosen among the successful cases, across all categories."""
    settled = [case for case in cases if case.outcome == "成功"]
    chosen = _spread_over_categories(settled, min(EXEMPLAR_MAX, round(len(cases) * EXEMPLAR_SHARE)),
                                     seed, "exemplar")
    for case in chosen:
        rng = _case_rng(seed, "exemplar", case.external_id)
        techniques = rng.sample(TECHNIQUES, rng.randint(1, 3))
        marked = min(case.closed_on + dt.timedelta(days=rng.randint(10, 90)), PERIOD_END)
        session.add(ExemplarMark(
            case_id=case.id, curator=_person_name(rng), techniques=techniques, synthetic=True,
            marked_at=dt.datetime.combine(marked, dt.time(9)),
            note=f"{case.cause or case.category}：调解员运用{'、'.join(techniques)}促成和解，"
                 "可供同类纠纷参考。"))
    return len(chosen)


def _review_quality(session: Session, cases: list[DisputeCase], seed: int) -> int:
    """File reviews with follow-up scores for a hash-chosen share of the closed cases."""
    closed = [case for case in cases if case.closed_on]
    chosen = sorted(closed, key=lambda c: _stable_hash(seed, "review", c.external_id))
    chosen = chosen[:min(REVIEW_MAX, round(len(cases) * REVIEW_SHARE))]
    for case in chosen:
        rng = _case_rng(seed, "review", case.external_id)
        low, high = _weighted(rng, REVIEW_BANDS)
        scores = {item: rng.randint(low, high) for item in REVIEW_ITEMS}
        total = sum(scores.values())
        session.add(QualityReview(
            case_id=case.id, reviewer=_person_name(rng), scores=scores, total_score=total,
            verdict="优秀" if total >= 90 else "合格" if total >= 60 else "不合格",
            reviewed_on=min(case.closed_on + dt.timedelta(days=rng.randint(7, 60)), PERIOD_END),
            synthetic=True))
    return len(chosen)


def _write_materials(session: Session, seed: int) -> int:
    """Learning material per category, linked to that category's exemplars; written once."""
    if session.scalar(select(LearningMaterial.id).where(LearningMaterial.synthetic).limit(1)):
        return 0
    exemplars = defaultdict(list)
    query = select(DisputeCase).join(ExemplarMark).order_by(DisputeCase.external_id)
    for case in session.scalars(query):
        exemplars[case.category].append(case)
    categories = sorted(exemplars)
    if not categories:
        return 0
    rng = random.Random(_stable_hash(seed, "materials"))
    kinds = list(MATERIAL_KINDS)
    for i in range(MATERIALS):
        category, kind = categories[i % len(categories)], kinds[i % len(kinds)]
        linked = rng.sample(exemplars[category], min(3, len(exemplars[category])))
        session.add(LearningMaterial(
            title=f"{category}类纠纷{MATERIAL_KINDS[kind]}", kind=kind, synthetic=True, cases=linked,
            body=f"供调解员学习{category}类纠纷的调解方法，参考案例："
                 f"{'；'.join(f'{c.case_number}（{c.title}）' for c in linked)}。"))
    return MATERIALS
