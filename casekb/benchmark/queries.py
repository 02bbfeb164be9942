"""The benchmark's query set: half phrases cut from case texts, half short colloquial queries."""
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
#: Filtered runs restrict each query to one of these categories (in turn) and to cases since this day.
FILTER_CATEGORIES = ("婚姻家庭", "合同", "劳动争议", "损害赔偿")
FILTER_SINCE = dt.date(2021, 1, 1)
_CLAUSES = re.compile(r"[，。；：,;:！？!?\s]")


@dataclass(frozen=True)
class BenchQuery:
    text: str
    kind: str  # "cut" from a case text or "colloquial"
    #: the category of the filtered run
    category: str

    def filters(self) -> Filters:
        return Filters(categories=(self.category,), received_from=FILTER_SINCE)


def sample_queries(texts: list[str], count: int, seed: int = 7) -> list[BenchQuery]:
    """`count` queries with a fixed seed: even ones cut from `texts` (4-16 characters of one clause),
    odd ones colloquial (the list in turn, so all of it is used)."""
    rng = random.Random(seed)
    clauses = [c for text in texts for c in _CLAUSES.split(text) if len(c) >= 6]
    queries = []
    for number in range(count):
        category = FILTER_CATEGORIES[number % len(FILTER_CATEGORIES)]
        if number % 2 or not clauses:
            queries.append(BenchQuery(COLLOQUIAL[(number // 2) % len(COLLOQUIAL)], "colloquial", category))
            continue
        clause = rng.choice(clauses)
        length = rng.randint(4, 16)
        start = rng.randrange(0, max(1, len(clause) - length))
        queries.append(BenchQuery(clause[start:start + length], "cut", category))
    return queries
