"""The benchmark's query sets: keyword queries (half phrases cut from case texts, half short colloquial
queries) and case descriptions (half openings of case texts, half a dispute told in everyday words),
which hybrid search answers as a case (indexer/case_query.py)."""
from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass

from indexer.query import Filters

COLLOQUIAL = (
    "邻居 楼上 漏水", "借钱不还", "离婚 孩子 抚养费", "老板 拖欠工资", "工伤 赔偿", "彩礼 退还", "宅基地 围墙",
    "物业费 不交", "交通事故 误工费", "装修 噪音", "医院 手术 赔偿", "土地 承包 纠纷", "欠条 利息", "房屋 租赁 押金",
    "父母 赡养", "拆迁 补偿款", "朋友借钱 不还 打了欠条", "老公 出轨 要离婚", "孩子 跟谁 生活", "房子 怎么分",
    "干活 受伤 老板 不管", "没签 劳动合同 双倍工资", "被 辞退 补偿", "加班费 不给", "货款 一直 拖着",
    "买的 房子 漏水", "车 被撞 保险", "工程款 结算", "担保 连带 责任", "夫妻 共同 债务", "抚养费 不给了",
    "分家 遗产", "退 定金", "合伙 生意 散伙", "租房 提前 退租", "社保 没交", "欠钱 跑路", "借条 写错 日期",
    "狗 咬人", "婚前 房产 加名",
)
#: What a mediator types when describing the dispute in front of them, at least CASE_TEXT_CHARS characters each.
DESCRIPTIONS = (
    "楼上邻居家卫生间漏水，把我家天花板泡坏了，找他们修了好几次一直拖着不管，现在墙皮都掉了",
    "朋友前年向我借了五万块钱，当时打了借条说一年还，现在到期了一直推脱不还，电话也不接",
    "在工地干了大半年活，包工头拖欠工资三万多，说开发商没给钱，我们十几个工人都没拿到",
    "老公要跟我离婚，孩子才五岁我想自己带，婚后一起买的房子还有贷款没还完，不知道房子怎么分",
    "骑电动车上班路上被一辆小轿车撞了，腿骨折住院一个月，对方保险公司只肯赔医药费不赔误工费",
    "父亲去世后留下一套老房子和一些存款，没有立遗嘱，大哥一直住着不让我们几个兄弟姐妹分",
    "母亲在县医院做了胆囊手术，出院后伤口感染又住院半个月，花了好几万，医院说不是他们的责任",
    "租的房子合同还有一年才到期，房东突然要收回去卖掉，押金和预付的三个月房租都不肯退给我",
    "邻居去年盖新房把围墙砌到了我家宅基地上，占了半米多宽，村委会调解过一次他也不肯拆",
    "在厂里上班时右手被机器压伤了，老板一直没给我们交社保，现在不肯出医药费也不给算工伤",
    "订婚时按老家风俗给了女方十八万彩礼和三金，后来女方反悔不结婚了，她家只肯退一半彩礼",
    "我们兄弟三个，母亲七十多岁了身体不好常住院，两个哥哥都不肯出赡养费，全靠我一个人照顾",
)
#: Filtered runs restrict each query to one of these categories (in turn) and to cases since this day.
FILTER_CATEGORIES = ("婚姻家庭", "合同", "劳动争议", "损害赔偿")
FILTER_SINCE = dt.date(2021, 1, 1)
_CLAUSES = re.compile(r"[，。；：,;:！？!?\s]")
_SENTENCE_END = re.compile(r"[。！？!?；;]")
#: A pasted description is the opening of a case text cut at a sentence end from this many characters on,
#: at most PASTED_MAX characters (at PASTED_MAX when no sentence ends between).
PASTED_MIN, PASTED_MAX = 200, 400


@dataclass(frozen=True)
class BenchQuery:
    text: str
    kind: str  # "cut" from a case text or "colloquial"; descriptions: "pasted" or "described"
    #: the category of the filtered run
    category: str

    def filters(self) -> Filters:
        return Filters(categories=(self.category,), received_from=FILTER_SINCE)


def sample_queries(texts: list[str], count: int, seed: int = 7) -> list[BenchQuery]:
    """`count` queries with a fixed seed: even ones cut from `texts` (4-16 characters of one clause),
    odd ones colloquial (the list in turn, so all of it is used)."""
    rng = random.Random(seed)
    clauses = [c for text in texts for c in _CLAUSES.split(text) if len(c) >= 6]

    def cut() -> str:
        clause = rng.choice(clauses)
        length = rng.randint(4, 16)
        start = rng.randrange(0, max(1, len(clause) - length))
        return clause[start:start + length]
    return _alternating(count, (cut, "cut") if clauses else None, COLLOQUIAL, "colloquial")


def sample_descriptions(texts: list[str], count: int, seed: int = 7) -> list[BenchQuery]:
    """`count` case descriptions with a fixed seed: even ones "pasted", the opening of one of `texts` cut
    at a sentence end (PASTED_MIN-PASTED_MAX characters, from the texts at least PASTED_MIN long), odd
    ones "described" (DESCRIPTIONS in turn)."""
    rng = random.Random(seed)
    texts = [text for text in texts if len(text) >= PASTED_MIN]

    def opening() -> str:
        text = rng.choice(texts)
        return text[:next((m.end() for m in _SENTENCE_END.finditer(text, PASTED_MIN) if m.end() <= PASTED_MAX),
                          PASTED_MAX)]
    return _alternating(count, (opening, "pasted") if texts else None, DESCRIPTIONS, "described")


def _alternating(count: int, cut, fixed: tuple[str, ...], fixed_kind: str) -> list[BenchQuery]:
    """Even queries from `cut` (a function and its kind; None: none to cut), odd ones from `fixed` in turn;
    the filtered run's category in turn."""
    queries = []
    for number in range(count):
        category = FILTER_CATEGORIES[number % len(FILTER_CATEGORIES)]
        if number % 2 or cut is None:
            queries.append(BenchQuery(fixed[(number // 2) % len(fixed)], fixed_kind, category))
        else:
            queries.append(BenchQuery(cut[0](), cut[1], category))
    return queries
