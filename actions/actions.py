"""Custom actions: start and validate the concern form, submit, merge, correct, cancel, look up, hand off."""

from __future__ import annotations

import logging
import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import spool
from actions.intake_client import IntakeClient, IntakeError, IntakeUnavailable, client_ref
from actions.parsing import (
    NO_PHONE,
    UNKNOWN,
    corrected_place,
    correction_target,
    correction_value,
    merge_place,
    strip_filler,
)
from bot.config import case_number_prefix
from bot.text.answers import Answer, anonymity, consent, is_skip, yes_no
from bot.text.casenumbers import find_case_number
from bot.text.pii import find_phone
from bot.text.vague import meaningful_length

logger = logging.getLogger(__name__)

# A place that is only a building/unit/floor number ("5号楼", "3栋2单元").
BARE_UNIT = re.compile(r"^(?:[0-9一二三四五六七八九十百]+(?:号楼|号院|栋|幢|单元|号|层|楼|室))+$")
FORM_SLOTS = ["description", "place", "since_when", "scope", "contact_consent", "phone", "anonymous"]
STATE_SLOTS = ["kind", "awaiting", "submission_id", "merge_target", "own_case_number"]
SLOT_LABELS = {
    "description": "问题内容",
    "place": "地点",
    "since_when": "开始时间",
    "scope": "影响范围",
    "phone": "联系电话",
    "anonymous": "是否匿名",
}
# Below this many letters/digits an answer cannot describe a concern ("有", "投诉").
MIN_DESCRIPTION_CHARS = 3
# Unprompted text this long (outside the form) is taken as a story even without 投诉/反映 words;
# short stray answers ("三个月了", "5号楼") are not.
STORY_MIN_CHARS = 12


def _client() -> IntakeClient:
    return IntakeClient()


def _channel(tracker: Tracker) -> str:
    return tracker.get_latest_input_channel() or "rest"


def _text(tracker: Tracker) -> str:
    return str(tracker.latest_message.get("text") or "")


def _intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def _entity(tracker: Tracker, name: str) -> str | None:
    value = next(tracker.get_latest_entity_values(name), None)
    return str(value) if value is not None else None


def _reset(*, keep_kind: bool = False, keep_media: bool = False) -> list[EventType]:
    names = FORM_SLOTS + [s for s in STATE_SLOTS if not (keep_kind and s == "kind")]
    if not keep_media:
        names.append("media")
    return [SlotSet(name, None) for name in names]


def _known(value: Any) -> str | None:
    """Slot text for the API: None for skipped or unknown answers."""
    if value in (None, "", UNKNOWN):
        return None
    return str(value)


def summary_text(tracker: Tracker) -> str:
    """The read-back the resident confirms before anything is sent."""
    get = tracker.get_slot
    kind = "建议" if get("kind") == "suggestion" else "问题反映"
    description = str(get("description") or "")
    if len(description) > 150:
        description = description[:150] + "……"
    lines = ["我整理了一下，请您核对：", f"· 类型：{kind}", f"· 内容：{description}", f"· 地点：{get('place') or '未说明'}"]
    if get("kind") != "suggestion":
        lines.append(f"· 开始时间：{get('since_when') or UNKNOWN}")
        lines.append(f"· 影响范围：{get('scope') or UNKNOWN}")
    phone = get("phone")
    if get("contact_consent") and phone and phone != NO_PHONE:
        lines.append(f"· 联系电话：{phone}（只用于回访，不公开）")
    else:
        lines.append("· 联系电话：不留")
    lines.append(f"· 匿名：{'是' if get('anonymous') else '否'}")
    lines.append("没问题请回复“确认”；要修改直接说，比如“地址改成5号楼”；不想提交了说“算了”。")
    return "\n".join(lines)


class ActionStartConcern(Action):
    """Opens a concern or suggestion; reuses what the opener already says so it is not asked again."""

    def name(self) -> str:
        return "action_start_concern"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        text = _text(tracker)
        kind = "suggestion" if _intent(tracker) == "give_suggestion" else "concern"
        # A photo sent just before the words belongs to this concern.
        events = _reset(keep_media=True) + [SlotSet("kind", kind)]
        analysis = await analyze(text)
        if analysis.get("vague"):
            dispatcher.utter_message(text="好的，我来帮您记录。" if kind == "concern" else "好的，欢迎您提建议。")
            return events
        events.append(SlotSet("description", text.strip()))
        events += prefill_events(analysis, tracker)
        dispatcher.utter_message(
            text="谢谢您的建议，我先记下来了。" if kind == "suggestion" else "收到，您说的情况我先记下来了。")
        return events


async def analyze(text: str) -> dict[str, Any]:
    """The intake service's reading of a free-text message; a local guess when it is unreachable."""
    try:
        return await _client().analyze(text)
    except (IntakeUnavailable, IntakeError) as exc:
        logger.warning("analyze unavailable, using local heuristics: %s", exc)
        return {"vague": meaningful_length(text) < 12, "place": None, "since_when": None,
                "scope": None, "phone": find_phone(text)}


def prefill_events(analysis: dict[str, Any], tracker: Tracker) -> list[EventType]:
    """Slots the analysis found that are still empty; a phone is kept but consent is still asked."""
    events: list[EventType] = []
    for slot in ("place", "since_when", "scope", "phone"):
        value = analysis.get(slot)
        if slot == "place" and value and BARE_UNIT.match(str(value)):
            continue  # "5号楼" alone does not say which estate: ask for the place
        if value and not tracker.get_slot(slot):
            if slot == "phone":
                value = find_phone(str(value)) or None
            if value:
                events.append(SlotSet(slot, str(value)))
    return events


class ValidateConcernForm(FormValidationAction):
    """Validates the free-text answers; the slot order and optional slots follow kind and consent."""

    def name(self) -> str:
        return "validate_concern_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> list[str]:
        slots = list(domain_slots)
        if tracker.get_slot("kind") == "suggestion":
            slots = [s for s in slots if s not in ("since_when", "scope")]
        if tracker.get_slot("contact_consent") is False:
            slots = [s for s in slots if s != "phone"]
        return slots

    async def validate_description(self, value: Any, dispatcher: CollectingDispatcher,
                                   tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        if value is None:
            return {}  # cleared by action_start_concern, not an answer
        text = str(value or "").strip()
        analysis = await analyze(text) if meaningful_length(text) >= MIN_DESCRIPTION_CHARS else {"vague": True}
        if analysis.get("vague"):
            dispatcher.utter_message(text="能再多说几句吗？比如出了什么问题、持续多久了、给您带来了什么影响。")
            return {"description": None}
        result: dict[str, Any] = {"description": text}
        # The story told in answer to the question may name the place or time too.
        for event in prefill_events(analysis, tracker):
            result[event["name"]] = event["value"]
        return result

    async def validate_place(self, value: Any, dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        if value is None:
            return {}  # cleared by action_start_concern, not an answer
        place = strip_filler(str(value or ""))
        if is_skip(place) or meaningful_length(place) < 2 or find_phone(place) == place.replace(" ", ""):
            dispatcher.utter_message(text="地点对核实情况很重要，请说个大概位置就行，比如哪个区、哪条路或哪个小区。")
            return {"place": None}
        return {"place": place}

    async def validate_since_when(self, value: Any, dispatcher: CollectingDispatcher,
                                  tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        if value is None:
            return {}  # cleared by action_start_concern, not an answer
        text = strip_filler(str(value or ""))
        return {"since_when": UNKNOWN if is_skip(text) or not text else text}

    async def validate_scope(self, value: Any, dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        if value is None:
            return {}  # cleared by action_start_concern, not an answer
        text = strip_filler(str(value or ""))
        return {"scope": UNKNOWN if is_skip(text) or not text else text}

    async def validate_contact_consent(self, value: Any, dispatcher: CollectingDispatcher,
                                       tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        if value is None:
            return {}  # cleared by action_start_concern, not an answer
        if isinstance(value, bool):
            return {"contact_consent": value}
        text = str(value or "")
        phone = find_phone(text)
        if phone:
            return {"contact_consent": True, "phone": phone}
        answer = consent(text, _intent(tracker))
        if answer not in (Answer.YES, Answer.NO):
            dispatcher.utter_message(text="不好意思没听明白。愿意留电话请说“可以”，不想留说“不留”就行。")
            return {"contact_consent": None}
        if answer is Answer.NO:
            dispatcher.utter_message(text="好的，不留电话也没关系，进展可以随时在这里问我。")
            return {"contact_consent": False, "phone": None}
        return {"contact_consent": True}

    async def validate_phone(self, value: Any, dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        if value is None:
            return {}  # cleared by action_start_concern, not an answer
        text = str(value or "")
        phone = find_phone(text)
        if phone:
            return {"phone": phone}
        if text == NO_PHONE or yes_no(text, _intent(tracker)) is Answer.NO:
            dispatcher.utter_message(text="好的，那就不留电话了。")
            return {"phone": None, "contact_consent": False}
        dispatcher.utter_message(text="这个号码好像不太对。请输入11位手机号，或带区号的座机号（如0571-88886666）；不想留可以说“不留”。")
        return {"phone": None}

    async def validate_anonymous(self, value: Any, dispatcher: CollectingDispatcher,
                                 tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        if value is None:
            return {}  # cleared by action_start_concern, not an answer
        if isinstance(value, bool):
            return {"anonymous": value}
        answer = anonymity(str(value or ""), _intent(tracker))
        if answer not in (Answer.YES, Answer.NO):
            dispatcher.utter_message(text="需要匿名请说“匿名”，不需要请说“不用”。")
            return {"anonymous": None}
        return {"anonymous": answer is Answer.YES}


class ActionReadBack(Action):
    def name(self) -> str:
        return "action_read_back"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(text=summary_text(tracker))
        return [SlotSet("awaiting", "confirm")]


def submission_payload(tracker: Tracker) -> dict[str, Any]:
    get = tracker.get_slot
    channel = _channel(tracker)
    message_id = tracker.latest_message.get("message_id") or f"event{len(tracker.events)}"
    payload: dict[str, Any] = {
        "text": str(get("description") or ""),
        "kind": "suggestion" if get("kind") == "suggestion" else "concern",
        "channel": channel,
        "sender": tracker.sender_id,
        "place": _known(get("place")),
        "since_when": _known(get("since_when")),
        "scope": _known(get("scope")),
        "anonymous": bool(get("anonymous")),
        # Stable per confirming message: a retried action or a replayed spool never opens a second case.
        "client_ref": client_ref(channel, tracker.sender_id, message_id),
    }
    if get("campaign"):
        payload["campaign"] = str(get("campaign"))
    if get("media"):
        payload["media"] = list(get("media"))
    phone = get("phone")
    if get("contact_consent") and phone and phone != NO_PHONE:
        payload["contact"] = {"phone": str(phone), "consent": True}
    return payload


class ActionSubmitConcern(Action):
    def name(self) -> str:
        return "action_submit_concern"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        client = _client()
        payload = submission_payload(tracker)
        if not payload["text"]:
            dispatcher.utter_message(text="这次还没有记录到要提交的内容。您想反映什么问题，直接告诉我就行。")
            return _reset()
        try:
            await spool.flush(client)
            result = await client.submit(payload)
        except IntakeUnavailable as exc:
            logger.warning("intake down, spooling %s: %s", payload["client_ref"], exc)
            spool.save(payload)
            dispatcher.utter_message(
                text="抱歉，提交系统暂时连不上。您的反映没有丢：我已经先保存下来，系统恢复后会自动提交。"
                     "过一会儿您可以问我“我反映的问题怎么样了”，查看编号和进度。")
            return _reset()
        except IntakeError as exc:
            dispatcher.utter_message(
                text=f"提交没有成功：{exc.message or '内容有误'}。您可以修改后回复“确认”，或者说“转人工”。")
            return [SlotSet("awaiting", "confirm")]
        return await self._reply(dispatcher, client, payload, result)

    async def _reply(self, dispatcher: CollectingDispatcher, client: IntakeClient, payload: dict[str, Any],
                     result: dict[str, Any]) -> list[EventType]:
        number = str(result.get("case_number", ""))
        duplicate = result.get("duplicate") or {}
        decision = duplicate.get("decision", "new")
        candidates = duplicate.get("candidates") or []
        if decision == "merged":
            supporters = await supporters_of(client, number, candidates)
            dispatcher.utter_message(
                text=f"提交成功！已经有居民反映过同样的问题，您的反映已并入编号 {number}"
                     f"{f'，目前共有{supporters}位居民反映' if supporters else ''}。我们会一并跟进，"
                     f"有进展会在这里告诉您，您也可以随时发编号查询。")
            return _reset()
        if decision == "ask" and candidates:
            best = candidates[0]
            dispatcher.utter_message(
                text=f"您的反映已登记，编号 {number}。另外，已有{best.get('supporters', 1)}位居民反映了类似问题"
                     f"（编号 {best.get('case_number')}：{best.get('subject_line', '')}），是否并入一起跟进？"
                     f"请回答“是”或“否”。")
            return _reset() + [
                SlotSet("awaiting", "merge"),
                SlotSet("submission_id", result.get("submission_id")),
                SlotSet("merge_target", best.get("case_number")),
                SlotSet("own_case_number", number),
            ]
        topic = (result.get("topic") or {}).get("name")
        follow_up = "工作人员可能会打电话向您核实情况。" if payload.get("contact") else ""
        dispatcher.utter_message(
            text=f"提交成功！您的编号是 {number}，请记好。{handled_before(candidates)}"
                 f"{f'这件事归在“{topic}”方面，' if topic else ''}我们会转给负责的政协委员和相关部门跟进，"
                 f"{follow_up}有进展会在这里告诉您；之后发编号或说“查进度”就能查询。")
        return _reset()


def handled_before(candidates: list[dict[str, Any]]) -> str:
    """A new case that matched a finished one (the service lists it with its status): say so."""
    if not candidates or not candidates[0].get("status_label"):
        return ""
    old = candidates[0]
    return (f"之前有居民反映过类似的问题（编号 {old.get('case_number')}，{old['status_label']}），"
            f"这次我们按新的情况重新跟进。")


async def supporters_of(client: IntakeClient, number: str, candidates: list[dict[str, Any]]) -> int | None:
    try:
        case = await client.get_case(number)
        if case and case.get("supporters"):
            return int(case["supporters"])
    except (IntakeUnavailable, IntakeError):
        pass
    for candidate in candidates:
        if candidate.get("case_number") == number and candidate.get("supporters"):
            return int(candidate["supporters"])
    return None


class ActionMergeDecision(Action):
    """The resident's answer to the merge offer: affirm merges, anything else keeps a separate case."""

    def name(self) -> str:
        return "action_merge_decision"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        client = _client()
        submission_id = tracker.get_slot("submission_id")
        target = tracker.get_slot("merge_target")
        own = tracker.get_slot("own_case_number")
        events = _reset()
        if submission_id is None or not target:
            dispatcher.utter_message(text=f"好的，您的问题按编号 {own or '已登记的编号'} 单独跟进。")
            return events
        try:
            if yes_no(_text(tracker), _intent(tracker)) is Answer.YES:
                result = await client.merge(int(submission_id), str(target), sender=tracker.sender_id,
                                            channel=_channel(tracker))
                supporters = result.get("supporters")
                dispatcher.utter_message(
                    text=f"好的，已并入编号 {result.get('case_number', target)}"
                         f"{f'，目前共有{supporters}位居民反映了这个问题' if supporters else ''}，会一起跟进。"
                         f"之后用这个编号就能查询进度。")
            else:
                await client.keep(int(submission_id), sender=tracker.sender_id, channel=_channel(tracker))
                dispatcher.utter_message(text=f"好的，您的问题单独立案，编号 {own}，我们会单独跟进。")
        except IntakeUnavailable:
            dispatcher.utter_message(
                text=f"系统暂时连不上，这一步没办成。不过您的问题已经登记，编号 {own}，不会丢失；"
                     f"工作人员核对时会处理合并。")
        except IntakeError as exc:
            if exc.code == "case_closed":  # the service's message already says it is filed on its own
                dispatcher.utter_message(text=f"{exc.message}您的编号是 {own}，之后发编号就能查询进度。")
            else:
                reason = (exc.message or "操作没有成功").rstrip("。！!. ")
                dispatcher.utter_message(text=f"{reason}。您的问题仍按编号 {own} 跟进。")
        return events


class ActionCorrectSlot(Action):
    """'地址说错了，是5号楼' / '电话改成139…': change one answer, then continue or read back again."""

    def name(self) -> str:
        return "action_correct_slot"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        in_form = tracker.active_loop.get("name") == "concern_form"
        if not in_form and not tracker.get_slot("description"):
            dispatcher.utter_message(text="目前没有正在填写的反映。您想反映什么问题，直接告诉我就行。")
            return []
        text = _text(tracker)
        phone = find_phone(_entity(tracker, "phone") or text)
        slot = correction_target(text, phone is not None)
        value = (corrected_place(text, _entity(tracker, "place")) if slot in (None, "place")
                 else correction_value(text))
        if slot is None:
            slot = "place" if value else None
        if slot is None:
            dispatcher.utter_message(text="请告诉我要改哪一项，比如“地址改成5号楼”“电话改成139xxxxxxxx”。")
            return [] if in_form else [SlotSet("awaiting", "confirm")]
        updates = self._updates(tracker, slot, value, phone, text)
        if updates is None:
            # We know what to change but not to what: ask for it through the form again.
            dispatcher.utter_message(text=f"好的，我们重新填一下{SLOT_LABELS.get(slot, '这一项')}。")
            events: list[EventType] = [SlotSet(slot, None)]
            return events if in_form else events + [SlotSet("awaiting", None), FollowupAction("concern_form")]
        events = [SlotSet(name, val) for name, val in updates.items()]
        if in_form:
            dispatcher.utter_message(text=f"好的，{SLOT_LABELS.get(slot, '这一项')}已改好。")
            return events
        # Read back the corrected summary on a tracker that already has the new values.
        tracker.slots.update(updates)
        dispatcher.utter_message(text="好的，已修改。\n" + summary_text(tracker))
        return events + [SlotSet("awaiting", "confirm")]

    @staticmethod
    def _updates(tracker: Tracker, slot: str, value: str, phone: str | None,
                 text: str) -> dict[str, Any] | None:
        if slot == "phone":
            if phone:
                return {"phone": phone, "contact_consent": True}
            if yes_no(text) is Answer.NO or "不留" in text:
                return {"phone": None, "contact_consent": False}
            return None
        if slot == "anonymous":
            answer = anonymity(text)
            return {"anonymous": answer is Answer.YES} if answer in (Answer.YES, Answer.NO) else None
        if not value:
            return None
        if slot == "place":
            return {"place": merge_place(tracker.get_slot("place"), value)}
        if slot == "description":
            old = tracker.get_slot("description")
            return {"description": f"{old}；补充：{value}" if old else value}
        return {slot: UNKNOWN if is_skip(value) else value}


class ActionCancelConcern(Action):
    def name(self) -> str:
        return "action_cancel_concern"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        collecting = any(tracker.get_slot(s) not in (None, "") for s in FORM_SLOTS + ["kind"])
        if tracker.get_slot("awaiting") == "merge":
            own = tracker.get_slot("own_case_number")
            dispatcher.utter_message(text=f"好的，不合并了，您的问题按编号 {own} 单独跟进。")
        elif collecting or tracker.get_slot("awaiting"):
            dispatcher.utter_message(text="好的，已取消，这次的内容不会提交。以后想反映什么，随时找我。")
        else:
            dispatcher.utter_message(text="好的。还有什么需要，随时告诉我。")
        return _reset()


def describe_case(case: dict[str, Any]) -> str:
    number = case.get("case_number", "")
    title = case.get("subject_line") or ""  # another resident's case shows no more than this
    parts = [f"编号 {number}{f'（{title}）' if title else ''}：目前状态“{case.get('status_label') or case.get('status')}”"]
    supporters = case.get("supporters")
    if supporters and int(supporters) > 1:
        parts.append(f"共有{supporters}位居民反映了这个问题")
    last = case.get("last_update") or {}
    if last.get("note"):
        when = str(last.get("time") or "")[:10]
        parts.append(f"最近进展{f'（{when}）' if when else ''}：{last['note']}")
    return "，".join(parts) + "。"


class ActionCheckProgress(Action):
    """Progress by case number, or the resident's own latest case on this channel."""

    def name(self) -> str:
        return "action_check_progress"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        client = _client()
        text = _text(tracker)
        prefix = case_number_prefix()
        number = (find_case_number(_entity(tracker, "case_number") or "", prefix)
                  or find_case_number(text, prefix))
        try:
            await spool.flush(client)
            if number:
                case = await client.get_case(number, sender=tracker.sender_id, channel=_channel(tracker))
                if case is None:
                    dispatcher.utter_message(
                        text=f"没有找到编号 {number} 的事项，请核对一下编号（格式如 SL2026-000123）。"
                             f"也可以说“查我上次反映的”。")
                else:
                    dispatcher.utter_message(text=describe_case(case))
                return []
            cases = await client.cases_for_sender(tracker.sender_id, _channel(tracker))
        except IntakeUnavailable:
            dispatcher.utter_message(text="查询系统暂时连不上，请稍后再试。您之前的反映都保存着，不会丢失。")
            return []
        if cases:
            reply = describe_case(cases[0])
            if len(cases) > 1:
                reply = f"您一共反映过{len(cases)}件事，最近一件是：{reply}查其他的请发编号给我。"
            dispatcher.utter_message(text=reply)
            return []
        waiting = spool.pending(tracker.sender_id)
        if waiting:
            dispatcher.utter_message(
                text=f"您有{len(waiting)}条反映正在等待提交（系统刚才连不上），恢复后会自动提交，请稍后再查。")
        else:
            dispatcher.utter_message(text="我这里没查到您在这个渠道反映过的事项。如果有编号，请直接发给我。")
        return []


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        description = tracker.get_slot("description")
        text = _text(tracker) + (f"\n（正在反映：{description}）" if description else "")
        try:
            await _client().handoff(tracker.sender_id, _channel(tracker), text, "resident_request")
        except (IntakeUnavailable, IntakeError):
            dispatcher.utter_message(
                text="抱歉，人工服务暂时连不上。请稍后再试，或拨打当地12345政务服务便民热线。")
            return []
        dispatcher.utter_message(
            text="好的，已为您转人工。工作人员会在工作时间（一般1个工作日内）在这里回复您；"
                 "等待期间您也可以继续把情况告诉我。")
        return _reset()


class ActionCoreFallback(Action):
    """When no rule or story fits: say so, and forget the turn so a running form is not disturbed."""

    def name(self) -> str:
        return "action_core_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        if await _is_untagged_story(tracker):
            # A whole story that the NLU filed under "inform" (no 投诉/反映 words): it is a concern.
            events = await ActionStartConcern().run(dispatcher, tracker, domain)
            return events + [FollowupAction("concern_form")]
        dispatcher.utter_message(
            text="抱歉，我这边没跟上。您可以重新说一下想反映的问题，或者说“转人工”让工作人员来帮您。")
        return [UserUtteranceReverted()]


async def _is_untagged_story(tracker: Tracker) -> bool:
    """Outside the form and any pending question, a substantive message is a concern being told."""
    if tracker.active_loop_name or tracker.get_slot("awaiting"):
        return False
    if _intent(tracker) not in ("inform", "report_concern", "give_suggestion"):
        return False
    text = _text(tracker)
    if meaningful_length(text) < STORY_MIN_CHARS:
        return False
    analysis = await analyze(text)
    # An address alone ("阳光社区5号楼") answers a question nobody asked; it is not a story.
    rest = text.replace(str(analysis.get("place") or ""), "")
    return not analysis.get("vague") and meaningful_length(rest) >= STORY_MIN_CHARS // 2


class ActionAttachMedia(Action):
    """A photo from WeChat (metadata.media): keep it with the concern being told, say so."""

    def name(self) -> str:
        return "action_attach_media"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        metadata = tracker.latest_message.get("metadata") or {}
        new = [m for m in metadata.get("media") or [] if isinstance(m, dict)]
        media = list(tracker.get_slot("media") or []) + new
        if tracker.active_loop_name:
            dispatcher.utter_message(text="照片收到了，会和您反映的问题一起提交。")
        else:
            dispatcher.utter_message(text="照片收到了。请再用文字简单说说是什么问题、在什么地方，我帮您一起提交。")
        return [SlotSet("media", media[:9])]
