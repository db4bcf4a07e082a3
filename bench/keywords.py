"""Benchmark the dispute keyword automaton against a loop of `in` over the same library.

    python bench/keywords.py [--words 2400] [--texts 5000] [--repeat 3] [--seed 13]

The library is the starter library grown to `--words` (the practice's 2,400) with phrases
made the way a district's library grows: a category's subjects joined to its acts (楼上 +
漏水, 老板 + 拖欠工资, bare or with 问题, 投诉); the texts are patrol and visit notes of 50
to 300 characters built from everyday clauses, a fifth of them carrying a keyword, some in
traditional script. Both sides fold each text the same way (`gridwatch.disputes.folding.fold`) and
must find the same hits; the ratio is the automaton's speed over the loop's. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from gridwatch.disputes.matcher import Keyword, LoopMatcher, Matcher
from gridwatch.disputes.starter import starter_keywords


def words(text: str) -> list[str]:
    """The words of a space-separated list."""
    return text.split()


# Per category: who (subjects) and what (acts); a grown library's phrases are subject + act.
GROWTH = {
    "邻里纠纷": (
        words("楼上 楼下 隔壁 对门 邻居 邻里 住户 租户 同楼 一楼 顶楼 院里"),
        words("吵架 噪音 漏水 骂人 堵门 占道 扔垃圾 养狗 装修 砸门 挡光 争吵 打架 占车位 堆杂物"),
    ),
    "婚姻家庭": (
        words("丈夫 妻子 老公 老婆 儿子 女儿 儿媳 女婿 婆婆 公公 继母 前夫 前妻"),
        words("打人 家暴 出轨 闹离婚 不赡养 不管老人 要抚养费 争房子 赶出门 吵闹 离家出走 冷暴力"),
    ),
    "劳资纠纷": (
        words("老板 包工头 公司 工地 厂里 饭店 物流公司 装修队 中介 保洁公司 项目部"),
        words("拖欠工资 欠薪 不发工资 克扣工资 辞退 不给社保 不结工钱 跑路 不签合同 压工资"),
    ),
    "物业纠纷": (
        words("物业 保安 业委会 电梯 小区 停车场 供暖公司 管家 维修工 开发商物业"),
        words("乱收费 不作为 断水 断电 涨价 不维修 打人 锁门 收停车费 不退押金 停暖"),
    ),
    "土地房屋": (
        words("宅基地 承包地 耕地 林地 草场 房屋 院墙 回迁房 安置房 门面房 厂房"),
        words("被占 纠纷 强拆 补偿不到位 确权 界线不清 漏水 开裂 拆迁 产权不清 违建"),
    ),
    "债务经济": (
        words("借款 欠款 货款 房租 借条 担保 网贷 高利贷 理财 集资款 预付卡 定金"),
        words("不还 催收 讨要 逾期 被骗 爆雷 跑路 追讨 不退 拖欠 起诉 纠纷"),
    ),
    "医疗纠纷": (
        words("医院 诊所 医生 护士 卫生院 药店 养老院 护工 牙科 体检中心"),
        words("误诊 医疗事故 乱收费 拒收 态度差 用错药 手术失败 不给病历 不退费 延误治疗"),
    ),
    "涉稳信访": (
        words("工人 业主 村民 家属 租户 老人 商户 拆迁户 股民 学生家长"),
        words("上访 聚集 堵路 静坐 拉横幅 扬言报复 闹事 围堵政府 集体投诉 进京"),
    ),
}
CLAUSES = (
    "今天上午入户走访", "老人身体状况良好", "家中整洁", "血压偏高已提醒按时服药",
    "子女每周回来看望", "冰箱里有新鲜蔬菜", "反映楼道灯不亮", "已联系物业处理",
    "天气转冷提醒注意保暖", "门口有快递未取", "社区医生上周来过", "老人说想参加社区活动",
    "下午巡查至小区北门", "路面有积水", "垃圾桶已满", "电动车在楼道充电已劝离",
    "燃气表读数正常", "窗帘已拉开", "灯亮着", "邻居说昨天见过老人", "独居老人需要重点关注",
    "与家属电话沟通", "已登记在册", "下次走访时间另行约定",
)  # fmt: skip
TRADITIONAL = str.maketrans("邻吵欠资钱债访纠纷医闹离赡养拆迁补偿漏",
                            "鄰吵欠資錢債訪糾紛醫鬧離贍養拆遷補償漏")  # fmt: skip


def library(words: int, rng: random.Random) -> list[Keyword]:
    """The starter library grown to `words` entries with subject + act phrases, drawn in
    a shuffled order."""
    entries = list(starter_keywords())
    seen = {(k.category, k.keyword) for k in entries}
    pairs = [
        (c, s + a + end)
        for c, (subs, acts) in GROWTH.items()
        for s in subs
        for a in acts
        for end in ("", "问题", "投诉")  # 楼上漏水, 楼上漏水问题: as libraries list them
    ]
    rng.shuffle(pairs)
    for category, phrase in pairs:
        if len(entries) >= words:
            break
        if (category, phrase) not in seen:
            seen.add((category, phrase))
            entries.append(Keyword(category, phrase, 1.0))
    if len(entries) < words:
        raise SystemExit(f"only {len(entries)} distinct phrases; fewer --words")
    return entries


def note(keywords: list[Keyword], rng: random.Random) -> str:
    """A note of 50 to 300 characters; a fifth carry a keyword, some as a typist varies it."""
    target = rng.randint(50, 300)
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < target:
        parts.append(rng.choice(CLAUSES))
    if rng.random() < 0.2:
        word = rng.choice(keywords).keyword
        if rng.random() < 0.3:
            word = word.translate(TRADITIONAL)
        parts.insert(rng.randrange(len(parts) + 1), word)
    return "，".join(parts)[:target] + "。"  # noqa: RUF001 - a Chinese note's comma


def rate(scan, texts: list[str], repeat: int) -> float:
    """Texts per second, the best of `repeat` passes."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for text in texts:
            scan(text)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=2400)
    parser.add_argument("--texts", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 - repeatable sample texts, no secret
    keywords = library(args.words, rng)
    texts = [note(keywords, rng) for _ in range(args.texts)]

    started = time.perf_counter()
    automaton = Matcher(keywords)
    build_s = time.perf_counter() - started
    loop = LoopMatcher(keywords)
    hits = [automaton.scan(t) for t in texts]
    if hits != [loop.scan(t) for t in texts]:
        raise SystemExit("the automaton and the loop disagree")
    hit_texts = sum(1 for h in hits if h)
    lengths = sorted(len(t) for t in texts)

    texts_per_s = naive_per_s = 0.0
    # Interleaved, so that a noisy neighbour on the machine hurts both alike.
    for _ in range(args.repeat):
        texts_per_s = max(texts_per_s, rate(automaton.scan, texts, 1))
        naive_per_s = max(naive_per_s, rate(loop.scan, texts, 1))
    print(
        f"{len(keywords)} keywords in {len({k.category for k in keywords})} categories "
        f"(automaton built in {build_s * 1000:.0f} ms); {len(texts)} texts of "
        f"{lengths[0]}-{lengths[-1]} characters, {hit_texts} with a hit"
    )
    print(f"automaton (ahocorasick-rs), folded: {texts_per_s:12,.0f} texts/s")
    print(f"loop of `in`, folded:               {naive_per_s:12,.0f} texts/s")
    summary = {
        "texts_per_s": round(texts_per_s),
        "naive_texts_per_s": round(naive_per_s),
        "ratio": round(texts_per_s / naive_per_s, 1),
        "words": len(keywords),
        "texts": len(texts),
        "texts_with_hits": hit_texts,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
