"""Texts as a district writes them — citizens' request descriptions, visit and patrol notes,
hazard descriptions — each labelled with the dispute it tells of, or none: the ground truth
the keyword library is measured against (bench/keyword_quality.py).

The sentences were written for this, independently of any keyword library: a dispute is
either *stated* in the words a mediation worker would use (两家因为漏水闹矛盾) or told as
people tell it (*paraphrase*: what happened, with none of the usual names for it), so the
second kind shows what a library misses. *Hard negatives* share words with disputes but tell
of none.

What counts as a dispute (矛盾纠纷), and so what a warning on a text is for: two parties — people, a
family, an employer, the property company, a hospital, an office — at odds over something
not settled, or someone saying they will take it further (上访, 堵门, 拼了). Not a dispute,
so a warning on it is a false warning: a service request nobody is fighting over (电梯坏了请
维修), a matter already settled (物业费已缴清), a talk or campaign that names the subject
(防范养老诈骗宣传), a fact of someone's life (老人在养老院日托, 儿子在工地上班), a hazard with
no one on the other side (楼道堆放杂物已清理).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import opencc

SOURCES = ("request", "visit", "patrol", "hazard")
FORMS = ("plain", "hard_negative", "stated", "paraphrase")
# Of every 100 texts: what a district's texts roughly hold. Disputes are rare in real notes;
# they are made common here so each category has enough to measure.
FORM_SHARES = {"plain": 0.62, "hard_negative": 0.18, "stated": 0.10, "paraphrase": 0.10}
TRADITIONAL_SHARE = 0.05  # typed in traditional script (a phone set so, a Hong Kong relative)
MIN_CHARS, MAX_CHARS = 50, 300

# Everyday clauses of each kind of text, none telling of a dispute.
FILLERS = {
    "request": (
        "您好，我是5号楼2单元的住户", "我住在富强路小区3栋", "这个问题已经反映过一次了",
        "希望社区帮忙协调一下", "麻烦尽快安排人来看看，谢谢", "联系电话同来电号码",
        "白天家里有人", "老人行动不便，上下楼很困难", "具体位置在小区北门进去左手边",
        "上周打过一次电话", "请工作人员来之前先打电话", "附近好几户都有这个情况",
        "家里有老人和小孩", "晚上八点以后都在家", "来电人要求回访",
    ),
    "visit": (
        "今天下午入户走访", "老人精神状态不错", "血压偏高，已提醒按时服药",
        "家中整洁，燃气阀门已关好", "子女在外地工作，每周视频通话", "冰箱里有新鲜蔬菜",
        "窗帘已拉开，灯亮着", "老人说想参加社区的书法班", "已测量血压血糖，数值正常",
        "提醒天冷注意保暖", "已帮老人更换了烟感电池", "下次走访约在下周三",
        "老人耳朵有点背，说话要大声", "家里暖气正常", "已登记老人的用药情况",
        "老人说最近睡眠还行", "社区医生上周来过", "已留下网格员联系电话",
    ),
    "patrol": (
        "上午巡查至3号楼", "下午巡查小区北门一带", "楼道消防通道畅通", "路灯正常",
        "垃圾分类点整洁", "外来人员已登记", "电动车违规充电已劝离", "井盖完好",
        "健身器材无损坏", "小区门岗值守正常", "宣传栏已更新", "绿化带有枯枝已通知清理",
        "巡查中未发现异常", "与门卫核对了出入登记", "地下车库照明正常",
    ),
    "hazard": (
        "外墙瓷砖空鼓开裂有脱落风险", "楼道内有燃气异味", "电动车入户充电私拉飞线",
        "小区路面坑洼老人易绊倒", "雨水井盖缺失积水严重", "垃圾桶满溢未及时清运",
        "已设置警示标志", "已拍照上传", "已通知相关单位处理", "现场已拉警戒线",
        "影响居民出行", "需尽快处理",
    ),
}  # fmt: skip

# Per category: disputes stated in the usual words, and the same kinds of dispute told as
# people tell them.
STATED = {
    "邻里纠纷": (
        "两家因为楼上漏水闹矛盾，已经吵过好几次", "邻居之间因装修噪音发生争吵",
        "3楼和4楼住户因占用楼道堆放杂物起了纠纷", "两户邻居因为抢车位差点打起来",
        "楼下住户反映楼上半夜装修扰民，双方协商不成", "邻里之间因为狗叫问题互相辱骂",
        "对门两家因为门口堆东西吵架，需要调解", "居民反映邻居油烟直排到自家窗户，沟通无果",
    ),
    "婚姻家庭": (
        "王女士反映丈夫酗酒后对她动手，疑似家暴", "夫妻二人因琐事争吵，女方闹着要离婚",
        "老人反映子女不赡养，每月生活没有着落", "婆媳矛盾激化，儿媳把婆婆赶出家门",
        "两兄弟为分老人的房子闹翻了", "离婚后男方一直不给抚养费",
        "女方说男方出轨，两人正在闹离婚", "老人被儿子打了，身上有伤",
    ),
    "劳资纠纷": (
        "十几名工人反映包工头拖欠工资三个月", "饭店服务员反映老板克扣工资",
        "保洁公司员工说被无故辞退，没有任何补偿", "工地上的农民工讨薪未果",
        "快递员反映公司不交社保", "员工在厂里受了工伤，老板不肯认",
        "装修队老板跑路，工人工钱没结", "几名员工说加班费一直没发",
    ),
    "物业纠纷": (
        "业主和物业因为物业费上涨发生纠纷", "物业不作为，几十户业主拒交物业费",
        "物业以欠费为由给业主家断水断电", "电梯坏了一个月物业不管，业主要集体投诉",
        "业委会和物业公司因为维修基金的使用闹僵了", "保安和业主因为停车费发生冲突",
        "冬天暖气不热，物业和业主互相推诿", "业主反映物业服务差，要求更换物业",
    ),
    "土地房屋": (
        "两户村民因宅基地界线发生纠纷", "居民反映拆迁补偿不到位，拒绝搬迁",
        "回迁房迟迟不交房，回迁户意见很大", "开发商延期交房，业主要求赔偿",
        "租户和房东因押金和房租起了纠纷", "居民反映自家耕地被人占用",
        "房屋买卖后卖方不配合过户，双方争执", "两家因为私搭乱建挡住通道发生争执",
    ),
    "债务经济": (
        "老人借给亲戚的钱要不回来，对方欠钱不还", "居民反映被人上门讨债，天天堵在门口",
        "老人被推销保健品骗了三万多", "小区有人搞非法集资，好几户老人投了钱",
        "居民反映借了网贷还不上，催收电话打到单位", "健身房预付卡老板卷款跑路",
        "两人为一笔货款发生纠纷", "老人给人做担保，现在被法院执行",
    ),
    "医疗纠纷": (
        "家属认为医院误诊耽误了治疗，要求赔偿", "老人在诊所输液后出现不良反应，家属与诊所发生纠纷",
        "患者家属和医院因手术失败起了医疗纠纷", "居民反映医院乱收费，多收了几千块",
        "家属不同意医院的说法，要求封存病历", "老人在养老院摔伤，家属和养老院在协商赔偿",
        "患者去世，家属在医院门口聚集", "居民反映医生态度恶劣，和护士吵了起来",
    ),
    "涉稳信访": (
        "几十名业主扬言要集体上访", "工人准备到区政府门口拉横幅",
        "居民多次投诉无果，说要去市里上访",
        "有人扬言报复社会，情绪很激动", "一群商户堵路讨要说法", "村民准备越级上访反映征地问题",
        "居民说要在网上曝光，找媒体来", "当事人说活不下去了，情绪低落，需重点关注",
    ),
}  # fmt: skip
PARAPHRASE = {
    "邻里纠纷": (
        "楼上那家每天半夜还在蹦跳拖椅子，下去敲门说了两回，对方说嫌吵就搬走，现在两家见面都不说话",
        "隔壁把纸箱和旧家具全摆在我家门口，说了不听，还说这楼道又不是我家的",
        "对门养了三条大狗，天天在楼道里拉屎，找他理论反被骂了一顿",
        "楼下开了个烧烤摊，烟全往我家窗户里灌，跟老板说了好几次都不改",
        "前后两栋的住户为了晾衣绳拉到谁家窗前的事，差点动手",
        "我家车天天被同一辆车堵着出不去，那家人还嫌我按喇叭",
    ),
    "婚姻家庭": (
        "老人哭着说儿子喝了酒就摔东西，上周还推了她一把，胳膊现在还青着",
        "刘女士说她男人半年没往家拿钱，两人天天闹，她想带孩子回娘家不过了",
        "老人的两个儿子都不愿意接她去住，每月的生活费也你推我我推你",
        "走访时听见屋里男的在大声吼，女的在哭，敲门后说没事，脸上有红印",
        "老人说女儿女婿把她的退休金卡拿走了，一分钱也不给她",
        "小两口结婚才一年，女方娘家来人把东西都搬走了，说日子过不下去",
    ),
    "劳资纠纷": (
        "在小区干保洁的几个大姐说三个月没见到钱了，经理一直说下个月",
        "装修队的师傅说活干完了，老板电话打不通，一分钱都没拿到",
        "饭店突然关门，服务员押在店里的一个月钱老板不给",
        "厂里让大家签一张自愿离职的纸，不签就不让进门，工人们很不服",
        "送外卖的小伙子说站长随便扣钱，一个月被扣了八百多",
        "工地上的人说干了一年了，年底结账的时候老板只给了一半",
    ),
    "物业纠纷": (
        "收钱的时候一个比一个积极，楼道灯坏了半年没人修，大家商量着今年都不交了",
        "小区门口的道闸换了以后，每辆车每月要多交两百，居民很气愤",
        "楼顶一下雨就往下渗，找了管理处十几次，每次都说报上去了",
        "冬天屋里只有十三四度，打电话过去就说正常，住户们准备一起去找他们",
        "管理处把小区的空地租给别人开饭店，也没问过住户，好多人有意见",
        "住户们自己凑钱修的门禁，管理处却要收管理费，双方僵持不下",
    ),
    "土地房屋": (
        "老人说邻村的人把他家地头的石头挪了两米，种上了玉米，去村里说没人管",
        "老房子拆了五年了还没分到新房，当初说好的钱也没给够",
        "买的新房收房时墙上全是裂纹，找卖房的说是正常现象，不给修",
        "租的房子还没到期，房主就要收回，押的钱也不退",
        "两家的院墙到底该往哪边砌，争了好几年了",
        "老人说自家的房子被侄子偷偷过到了自己名下",
    ),
    "债务经济": (
        "老人前年借给外甥五万块，说好一年还，现在人找不到，电话也拉黑了",
        "在小区门口听健康讲座，花了三万多买了一堆药，现在退不了",
        "前几年投了一个养老项目，说好每月返利，现在那家公司人去楼空",
        "有个陌生人说是老人的孙子出事了要钱，老人差点把存款转过去",
        "老两口替儿子还了几年的钱，现在又有人拿着条子上门来要",
        "小区门口的洗衣店收了办卡的钱，第二个月就关门了",
    ),
    "医疗纠纷": (
        "老伴在医院做完手术第三天人就没了，家属认为院方有责任，这几天一直守在医院",
        "老人拔牙后脸肿了一个星期，牙科说跟他们没关系",
        "去体检中心查的说没事，两个月后到大医院查出是晚期，家属想讨个公道",
        "小区门口的理疗店给老人扎针，扎完腿就走不了路了",
        "孩子打完针起了一身红疹，家长和社区卫生站吵了一上午",
        "老人说在护理院被绑在床上，家属看到手腕上有勒痕",
    ),
    "涉稳信访": (
        "几十个业主约好周一一起去区政府门口，要求当面给个答复",
        "老人说这事再不解决，他就去北京找领导",
        "有人在群里发动大家明天去开发商售楼处堵着",
        "那人说要是再拖下去就跟他们拼了，说的时候手里拿着刀",
        "一个男的站在楼顶边上不肯下来，说公司欠他的钱不给",
        "几个工人把铺盖搬到了公司门口，说拿不到钱就不走了",
    ),
}  # fmt: skip
# Texts that tell of no dispute, though they share words with disputes and their libraries.
HARD_NEGATIVES = (
    "物业费已缴清，感谢物业及时维修", "居民咨询供暖费什么时候开始缴纳",
    "业委会换届选举公告已张贴在宣传栏", "电梯年检已完成，物业在电梯口贴了通知",
    "今天停水检修管道，已提前通知居民", "楼道堆放杂物已清理干净",
    "小区开展文明养犬宣传，提醒遛狗牵绳",
    "老人和邻居关系融洽，常在一起下棋", "邻居说昨天还见过老人，状态挺好",
    "老人女儿下月结婚，老人很高兴", "老人与子女关系和睦，子女按月给赡养费",
    "社区举办婚姻家庭法律讲座", "老伴去世后一直独居，儿女每周来看",
    "老人说孙子明年结婚，彩礼两家已经商量好了",
    "老人儿子在工地上班，工资按时发", "社区公益岗招聘，已签订劳动合同",
    "老人退休前在厂里工作，享受工伤保险待遇", "宣传保障农民工工资支付条例",
    "老人想咨询房产证加名字怎么办", "回迁房已经交房，老人住得很满意",
    "居民咨询二手房过户需要哪些材料",
    "社区民警来讲防范养老诈骗", "提醒老人不要轻信上门推销保健品", "帮老人在手机上转账交了电费",
    "老人说借给邻居的钱已经还了", "社区开展防范非法集资宣传",
    "老人上周去医院复查，医保报销了大部分", "社区医生来给老人打流感疫苗",
    "老人在养老院日托，护工照顾周到", "已帮老人把病历和检查单整理好",
    "社区组织居民观看消防演练，人员聚集有序", "提醒居民汽油、煤气罐等易燃物不要放在楼道",
    "老人说去年反映的事已经解决了，很满意", "宣传新修订的信访工作条例",
    "居民反映电梯坏了，请物业尽快维修", "暖气不热，请派人来看一下",
    "门禁坏了，进出不方便，请维修", "老人摔伤了腿，在家休养，女儿在照顾",
    "下水道管道堵塞，请安排疏通", "老人想找护工，请社区帮忙推荐",
    "老人说想给孙子存点钱，咨询银行理财", "社区调解员上门回访，两家矛盾已化解",
    "老人收到法院的传票，是给亲戚当证人", "垃圾清运车今天来晚了",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LabelledText:
    """A text and what it truly tells of: `category` is the dispute (one of the eight), or
    None when there is none; `form` says how (one of FORMS); `traditional`, that it is
    written in traditional characters."""

    text: str
    source: str
    category: str | None
    form: str
    traditional: bool = False


def labelled_texts(count: int, *, seed: int = 13) -> list[LabelledText]:
    """`count` texts of 50 to 300 characters from every source, with FORM_SHARES of each form
    and the dispute ones spread evenly over the categories; the same `seed`, the same texts."""
    rng = random.Random(seed)  # noqa: S311 - repeatable sample texts, no secret
    forms = list(FORM_SHARES)
    weights = list(FORM_SHARES.values())
    categories = list(STATED)
    to_traditional = opencc.OpenCC("s2t")
    texts = []
    for n in range(count):
        form = rng.choices(forms, weights)[0]
        category = None
        clause = None
        if form in ("stated", "paraphrase"):
            category = categories[n % len(categories)]
            clause = rng.choice((STATED if form == "stated" else PARAPHRASE)[category])
        elif form == "hard_negative":
            clause = rng.choice(HARD_NEGATIVES)
        source = rng.choice(SOURCES)
        text = compose(rng, source, clause)
        traditional = rng.random() < TRADITIONAL_SHARE
        if traditional:
            text = to_traditional.convert(text)
        texts.append(LabelledText(text, source, category, form, traditional))
    return texts


def compose(rng: random.Random, source: str, clause: str | None) -> str:
    """A text of `source`'s everyday clauses, `clause` somewhere among them, cut at a clause to
    between MIN_CHARS and MAX_CHARS characters."""
    target = rng.randint(MIN_CHARS, MAX_CHARS)
    room = target - (len(clause) + 1 if clause else 0)
    parts: list[str] = []
    fillers = list(FILLERS[source])
    rng.shuffle(fillers)
    while fillers and sum(len(p) + 1 for p in parts) < room:
        parts.append(fillers.pop())
    if clause:
        parts.insert(rng.randrange(len(parts) + 1), clause)
    while len(_join(parts)) > MAX_CHARS:
        parts.remove(next(p for p in parts if p != clause))
    while len(_join(parts)) < MIN_CHARS:
        parts.append(rng.choice(FILLERS[source]))
    return _join(parts)


def _join(parts: list[str]) -> str:
    return "，".join(parts) + "。"
