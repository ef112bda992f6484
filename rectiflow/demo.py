"""A sample provincial ledger, driven through a simulated spring (``rectiflow demo``).

The problems are the kind a provincial campaign on the work style of its civil service lists
in its problem-list ledgers (审批效率低, 推诿扯皮, 窗口服务不优 ...). Each case follows a
script of steps on working days counted from the start; the clock advances day by day and
the escalation sweep runs every morning, as the daemon would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from rectiflow.app import Engine

#: The default start: the first Monday of March 2026, after the Spring Festival holidays.
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
#: The simulation ends in the evening of this working day (counted from the start).
LAST_DAY = 85

UNITS = (
    ("HLJ", "黑龙江省", None),
    ("HRB", "哈尔滨市", "HLJ"),
    ("QQHR", "齐齐哈尔市", "HLJ"),
    ("DQ", "大庆市", "HLJ"),
    ("JMS", "佳木斯市", "HLJ"),
    ("HH", "黑河市", "HLJ"),
    ("SW", "孙吴县", "HH"),
    ("FGW", "省发展改革委", "HLJ"),
    ("CZT", "省财政厅", "HLJ"),
    ("RST", "省人社厅", "HLJ"),
    ("JTT", "省交通运输厅", "HLJ"),
)

SUPERVISOR = "赵敏"  # 省能力作风办
REPORTER = "周涛"  # 督查组
REVIEWER = "钱伟"  # 审核把关
VERIFIER = "孙丽"  # 检查验效
OWNERS = {
    "HRB": "李强", "QQHR": "郑洁", "DQ": "冯军", "JMS": "陈静", "HH": "褚亮",
    "FGW": "卫东", "CZT": "蒋华", "RST": "韩梅", "JTT": "杨帆",
}  # fmt: skip
HEADS = {"HRB": "吴刚", "QQHR": "王磊"}


# (working day, action, text, the working day an extension or exemption runs to)
Step = tuple[int, str, str | None, int | None]


@dataclass(frozen=True)
class Story:
    """One case: what it is, and its steps as (working day, action, text)."""

    unit: str
    severity: str
    category: str
    source: str
    title: str
    description: str
    measures: tuple[str, ...]
    steps: tuple[Step, ...]
    due_day: int | None = None  # a fixed rectification deadline (case open --due)


def _s(*steps: tuple[Any, ...]) -> tuple[Step, ...]:
    """Steps written as (day, action), (day, action, text) or (day, action, text, until):
    ``until`` is the working day an extension or an exemption runs to."""
    return tuple(
        (step[0], step[1], step[2] if len(step) > 2 else None, step[3] if len(step) > 3 else None)
        for step in steps
    )


# fmt: off
STORIES = (
    Story(
        "HRB", "high", "作风不优", "自检自查", "工程建设项目审批环节多、审批效率低",
        "企业反映审批环节多、材料重复提交，部分事项办理时间超过法定时限。",
        ("梳理审批事项清单，压减审批环节和申请材料",
         "推行“一窗受理、并联审批”，办理时限压缩至法定时限一半以内"),
        _s((0, "open"), (1, "confirm"), (3, "plan"), (5, "approve_plan"),
           (12, "note", "已完成审批事项梳理，压减环节12个、材料31项"),
           (18, "done"), (19, "submit"), (23, "accept"),
           (70, "lookback", "回头看：审批环节保持在压减后水平，未发现反弹")),
    ),
    Story(
        "QQHR", "high", "作风不优", "督查检查", "招商引资项目落地推诿扯皮、部门间协调不畅",
        "重点招商项目的用地、环评手续在多个部门间往返，企业多次反映无人牵头。",
        ("建立重点项目专班和首问负责制，明确牵头部门", "对推诿扯皮问题开展专项督查并通报"),
        _s((0, "open"), (2, "confirm"), (6, "plan"), (8, "approve_plan"),
           (20, "note", "召开部门协调会2次，仍有1个项目用地手续未办结"),
           (40, "note", "专班已成立，首问负责制尚未在县区落地"),
           (45, "exempt", "国家用地政策调整，相关审批统一暂停，予以容错免责", 55),
           (60, "note", "专项督查发现2个部门仍相互推诿，已约谈分管负责人"),
           (80, "note", "剩余项目手续预计下月办结")),
    ),
    Story(
        "DQ", "medium", "能力不足", "自检自查", "基层社会治理培训覆盖不全、干部专业能力不足",
        "新任职干部对基层社会治理业务不熟悉，培训未覆盖乡镇（街道）一线。",
        ("将基层社会治理纳入初任培训和全员轮训", "开展“业务小讲堂”，每月至少1期"),
        _s((1, "open"), (2, "confirm"), (5, "plan"), (7, "approve_plan"), (30, "done"),
           (31, "submit"), (36, "accept"),
           (75, "relapse", "回头看发现2个乡镇仍未开展培训，问题反弹")),
    ),
    Story(
        "JMS", "medium", "作风不优", "督查检查", "问题清单台账更新不及时、整改进度滞后",
        "市级问题台账多月未更新，部分整改事项进度与序时进度不符。",
        ("建立台账周更新、月通报制度",),
        _s((1, "open"), (3, "confirm"), (6, "plan"), (9, "approve_plan"), (25, "done"),
           (26, "submit"),
           (30, "reject", "佐证材料不充分：缺少3月、4月台账更新记录，整改成效无法核实"),
           (31, "measure", "补齐3月、4月台账更新记录，由分管领导签字确认"),
           (40, "done"), (41, "submit"), (45, "accept")),
    ),
    Story(
        "SW", "medium", "作风不优", "群众投诉", "窗口单位服务不优、群众办事多次跑腿",
        "群众反映办理社保、不动产登记需往返多次，一次性告知落实不到位。",
        ("推行“一次性告知”和“容缺受理”", "开展窗口服务明察暗访，结果每月通报"),
        _s((2, "open"), (4, "confirm"), (22, "plan"), (24, "approve_plan"),
           (30, "note", "已制定一次性告知清单，明察暗访发现问题3个"),
           (50, "note", "容缺受理事项扩大到26项"),
           (55, "extend", "容缺受理需市级部门联审，申请延期", 90), (57, "approve_extension"),
           (70, "note", "第二轮明察暗访仍发现多次跑腿问题，正在整改")),
    ),
    Story(
        "HH", "low", "营商环境", "调研访谈", "口岸通关效率不高、企业通关成本偏高",
        "进出口企业反映查验等待时间长，口岸收费项目不透明。",
        ("会同海关优化查验流程，推行“提前申报”", "公开口岸收费目录清单"),
        _s((3, "open"), (5, "confirm"), (8, "plan"), (10, "approve_plan"),
           (20, "pause", "等待海关通关改革试点统一部署"), (37, "resume"),
           (40, "note", "提前申报已在公路口岸试行"), (60, "note", "收费目录清单已公示")),
    ),
    Story(
        "FGW", "medium", "思想不解放", "自检自查", "重大项目前期工作谋划储备不足",
        "项目谋划储备滞后于发展需要，前期工作深度不够，影响项目按期开工。",
        ("建立重大项目储备库，滚动谋划储备项目", "每季度开展项目前期工作调度"),
        _s((4, "open"), (5, "confirm"), (7, "plan"), (9, "approve_plan"), (40, "done"),
           (41, "submit"), (44, "accept")),
    ),
    Story(
        "CZT", "medium", "能力不足", "巡视巡察", "财政支撑保障能力不够强、对上争取政策性资金不力",
        "对国家政策研究不深，争取中央预算内投资和政策性资金的项目储备不足。",
        ("建立对上争取资金项目清单和责任清单", "加强与国家部委对接，按月调度争取进展"),
        _s((4, "open"), (6, "confirm"), (8, "plan"), (10, "approve_plan"), (55, "done"),
           (56, "submit"), (60, "accept")),
        due_day=62,
    ),
    Story(
        "RST", "low", "作风不优", "开门纳谏", "服务招商引资企业落地不及时、人社专员对接不到位",
        "新落地企业招工、社保登记咨询无人对接，专员制度落实不到位。",
        ("为招商引资企业配备人社专员，建立对接台账",),
        _s((5, "open"), (7, "confirm"), (9, "plan"), (11, "approve_plan"), (20, "done"),
           (21, "submit"), (24, "accept")),
    ),
    Story(
        "QQHR", "low", "其他", "群众投诉", "反映供暖收费标准偏高",
        "群众来信反映小区供暖收费标准偏高。",
        (),
        _s((10, "open"),
           (12, "dismiss", "经核实属价格政策问题，不属于作风问题，已转市发展改革委办理")),
    ),
    Story(
        "JTT", "low", "能力不足", "自检自查", "重点工程建设协调推进机制不健全",
        "重点工程跨部门、跨地区协调事项多，缺少条块联动的推进机制。",
        ("建立“条块联动、部门联合、上下联通”协调推进机制", "每项重点工程单独建账推进"),
        _s((20, "open"), (21, "confirm"), (24, "plan"), (26, "approve_plan"),
           (50, "note", "协调推进机制已印发，12项工程单独建账"), (78, "done"), (80, "submit")),
    ),
    Story(
        "HRB", "high", "营商环境", "媒体曝光", "涉企检查多头执法、重复检查",
        "媒体报道同一企业一个月内接受不同部门检查5次，影响正常经营。",
        ("推行“综合查一次”联合检查，建立涉企检查备案制度",),
        _s((78, "open"), (80, "confirm"), (83, "plan")),
    ),
    Story(
        "DQ", "medium", "营商环境", "媒体曝光", "个别部门设障勒卡、变相向企业收费",
        "网络反映个别部门在办理许可时要求企业购买指定服务。",
        (),
        _s((83, "open")),
    ),
)
# fmt: on


def organise(engine: Engine) -> None:
    """The province, its cities and departments, and an actor for every role."""
    for code, name, parent in UNITS:
        engine.add_unit(code, name, parent)
    engine.add_actor(SUPERVISOR, ["supervisor", "reporter"])
    engine.add_actor(REPORTER, ["reporter"])
    engine.add_actor(REVIEWER, ["reviewer"])
    engine.add_actor(VERIFIER, ["verifier"])
    for unit, name in OWNERS.items():
        engine.add_actor(name, ["owner"], [unit])
    for unit, name in HEADS.items():
        engine.add_actor(name, ["head"], [unit])


def run(engine: Engine, start: dt.datetime = START) -> dt.datetime:
    """Build the ledger in an empty database and drive it; returns the simulated end time."""
    engine.init()
    organise(engine)
    first = start.astimezone(engine.tz).date()
    calendar = engine.rules.calendar

    def workday(n: int) -> dt.date:
        return first if n == 0 else calendar.shift_workdays(first, n)[0]

    agenda: dict[dt.date, list[tuple[int, str, str | None, int | None]]] = {}
    for index, story in enumerate(STORIES):
        for n, action, text, until in story.steps:
            agenda.setdefault(workday(n), []).append((index, action, text, until))
    last = workday(LAST_DAY)
    end = dt.datetime.combine(last, dt.time(18, 0), engine.tz)
    ids: dict[int, int] = {}
    day = first
    while day <= last:
        if day > first:  # the morning sweep, as the daemon would run it
            engine.escalate_due(dt.datetime.combine(day, dt.time(8, 30), engine.tz))
        morning = max(dt.datetime.combine(day, dt.time(9, 30), engine.tz), start)
        for order, (index, action, text, until) in enumerate(agenda.get(day, [])):
            now = morning + dt.timedelta(minutes=10 * order)
            until_day = workday(until) if until is not None else None
            _act(engine, STORIES[index], ids, index, action, text, now, workday, until_day)
        day += dt.timedelta(days=1)
    engine.escalate_due(end)
    return end


def _act(
    engine: Engine, story: Story, ids: dict[int, int], index: int, action: str,
    text: str | None, now: dt.datetime, workday: Callable[[int], dt.date],
    until: dt.date | None = None,
) -> None:  # fmt: skip
    owner = OWNERS.get(story.unit) or OWNERS["HH"]  # 孙吴县 is looked after from 黑河市
    if action == "open":
        due = workday(story.due_day) if story.due_day is not None else None
        case = engine.open_case(
            REPORTER, unit=story.unit, title=story.title, severity=story.severity,
            category=story.category, source=story.source, description=story.description,
            due=due, now=now,
        )  # fmt: skip
        ids[index] = case.id
        return
    case_id = ids[index]
    if action == "plan":
        for text_of_measure in story.measures:
            engine.add_measure(case_id, owner, text_of_measure, now=now)
    elif action == "measure":
        engine.add_measure(case_id, owner, text or "", now=now)
    elif action == "done":
        for measure in engine.measures(case_id):
            if not measure.done:
                engine.complete_measure(measure.id, owner, now=now)
    elif action == "note":
        engine.note(case_id, owner, text or "", now=now)
    elif action == "pause":
        engine.pause(case_id, SUPERVISOR, comment=text or "", now=now)
    elif action == "resume":
        engine.resume(case_id, SUPERVISOR, now=now)
    elif action == "extend":  # 申请延期
        assert until is not None
        engine.request_extension(case_id, owner, until=until, reason=text or "", now=now)
    elif action == "approve_extension":
        engine.decide_extension(case_id, SUPERVISOR, approve=True, now=now)
    elif action == "exempt":  # 容错免责: the morning sweep ends it at its date
        assert until is not None
        engine.exempt(case_id, SUPERVISOR, reason=text or "", until=until, now=now)
    elif action == "lookback":  # 回头看, before it is due
        engine.record_lookback(case_id, VERIFIER, "held", comment=text, now=now)
    elif action == "relapse":
        engine.record_lookback(case_id, VERIFIER, "relapsed", comment=text, now=now)
    else:
        actor = {
            "confirm": SUPERVISOR, "dismiss": SUPERVISOR, "approve_plan": REVIEWER,
            "submit": owner, "accept": VERIFIER, "reject": VERIFIER,
        }[action]  # fmt: skip
        engine.fire(case_id, action, actor, comment=text, now=now)
