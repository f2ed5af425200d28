"""Custom actions: start and validate the concern form, submit, merge, correct, cancel, look up, hand off.

Resident wording lives in domain.yml (`utter_*` responses); the actions only choose a response and
fill its variables, so staff can review and edit the copy in one place.
"""

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
from bot.text import answers
from bot.text.answers import Answer, is_skip
from bot.text.casenumbers import find_case_number
from bot.text.pii import find_phone
from bot.text.vague import meaningful_length

logger = logging.getLogger(__name__)

# A place that is only a building/unit/floor number ("5号楼", "3栋2单元").
BARE_UNIT = re.compile(r"^(?:[0-9一二三四五六七八九十百]+(?:号楼|号院|栋|幢|单元|号|层|楼|室))+$")
HAN = re.compile(r"[\u4e00-\u9fff]")
FORM_SLOTS = ["description", "place", "since_when", "scope", "contact_consent", "phone", "anonymous"]
STATE_SLOTS = ["kind", "awaiting", "submission_id", "merge_target", "own_case_number"]
# Names of the answers inside "好的，{field}已改好。" (utter_field_changed, utter_refill_field).
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
# The read-back shows this much of the story; the whole story is what gets submitted.
READ_BACK_CHARS = 150
# A paste longer than this is acknowledged as received in full (residents worry a long text was cut).
LONG_PASTE_CHARS = 1000
# Responses that mean "I did not understand": two of them in a row offer a person instead.
NOT_UNDERSTOOD = ("utter_core_fallback", "utter_fallback", "utter_fallback_in_form", "utter_offer_handoff")


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


def _location_label(tracker: Tracker) -> str | None:
    """The place of a WeChat location message (metadata.location, see bot/channels/base.py)."""
    location = (tracker.latest_message.get("metadata") or {}).get("location")
    if not isinstance(location, dict):
        return None
    label = strip_filler(str(location.get("label") or ""))
    if not label and location.get("latitude") and location.get("longitude"):
        label = f"{location['latitude']},{location['longitude']}"  # no name for the spot: keep where it is
    return label or None


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


def read_back(dispatcher: CollectingDispatcher, slots: dict[str, Any]) -> None:
    """The read-back the resident confirms before anything is sent (utter_read_back_*)."""
    get = slots.get
    description = str(get("description") or "")
    if len(description) > READ_BACK_CHARS:
        description = description[:READ_BACK_CHARS] + "……"
    phone = get("phone")
    has_phone = bool(get("contact_consent") and phone and phone != NO_PHONE)
    name = "utter_read_back_suggestion" if get("kind") == "suggestion" else "utter_read_back_concern"
    # The values are the read-back's one-word fields ("未说明", "不留", "是/否").
    dispatcher.utter_message(
        response=name, description=description, place=get("place") or "未说明",
        since_when=get("since_when") or UNKNOWN, scope=get("scope") or UNKNOWN,
        phone_line=f"{phone}（只用于回访，不公开）" if has_phone else "不留",
        anonymous_label="是" if get("anonymous") else "否")


def current_slots(tracker: Tracker) -> dict[str, Any]:
    return {name: tracker.get_slot(name) for name in FORM_SLOTS + ["kind"]}


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
        location = _location_label(tracker)
        if _intent(tracker) == "share_location" or location:
            # The place is known; action_ask_description asks what happened there.
            return events + ([SlotSet("place", location)] if location else [])
        analysis = await analyze(text)
        if analysis.get("vague"):
            dispatcher.utter_message(response="utter_concern_opened" if kind == "concern"
                                     else "utter_suggestion_opened")
            return events
        events.append(SlotSet("description", text.strip()))
        events += prefill_events(analysis, tracker)
        if len(text) > LONG_PASTE_CHARS:
            dispatcher.utter_message(response="utter_too_long")
        dispatcher.utter_message(response="utter_suggestion_noted" if kind == "suggestion"
                                 else "utter_concern_noted")
        return events


async def analyze(text: str) -> dict[str, Any]:
    """The intake service's reading of a free-text message; a local guess when it is unreachable."""
    try:
        return await _client().analyze(text)
    except (IntakeUnavailable, IntakeError) as exc:
        logger.warning("analyze unavailable, using local heuristics: %s", type(exc).__name__)
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

    async def extract_place(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                            domain: DomainDict) -> dict[str, Any]:
        """A location message fills the place whatever question is pending (the text mapping cannot)."""
        if _intent(tracker) != "share_location":
            return {}
        label = _location_label(tracker)
        if not label or label == tracker.get_slot("place"):
            return {}  # already taken by action_start_concern, which asks what happened there
        dispatcher.utter_message(response="utter_location_noted", place=label)
        return {"place": label}

    async def validate_description(self, value: Any, dispatcher: CollectingDispatcher,
                                   tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        if value is None:
            return {}  # cleared by action_start_concern, not an answer
        text = str(value or "").strip()
        analysis = await analyze(text) if meaningful_length(text) >= MIN_DESCRIPTION_CHARS else {"vague": True}
        if analysis.get("vague"):
            dispatcher.utter_message(response="utter_description_too_short")
            return {"description": None}
        if len(text) > LONG_PASTE_CHARS:
            dispatcher.utter_message(response="utter_too_long")
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
        # A place here is written with at least two Chinese characters ("5号楼" has two); keyboard mashing,
        # emoji, digits alone or another script are not a place.
        if is_skip(place) or len(HAN.findall(place)) < 2 or find_phone(place) == place.replace(" ", ""):
            dispatcher.utter_message(response="utter_place_needed")
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
        answer = answers.consent(text, _intent(tracker))
        if answer is Answer.NO:
            dispatcher.utter_message(response="utter_consent_declined")
            return {"contact_consent": False, "phone": None}
        if answer is Answer.YES:
            return {"contact_consent": True}
        dispatcher.utter_message(response="utter_consent_unclear")
        return {"contact_consent": None}

    async def validate_phone(self, value: Any, dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        if value is None:
            return {}  # cleared by action_start_concern, not an answer
        text = str(value or "")
        phone = find_phone(text)
        if phone:
            return {"phone": phone}
        if text == NO_PHONE or answers.yes_no(text, _intent(tracker)) is Answer.NO:
            dispatcher.utter_message(response="utter_phone_declined")
            return {"phone": None, "contact_consent": False}
        dispatcher.utter_message(response="utter_phone_invalid")
        return {"phone": None}

    async def validate_anonymous(self, value: Any, dispatcher: CollectingDispatcher,
                                 tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        if value is None:
            return {}  # cleared by action_start_concern, not an answer
        if isinstance(value, bool):
            return {"anonymous": value}
        answer = answers.anonymity(str(value or ""), _intent(tracker))
        if answer is Answer.YES:
            return {"anonymous": True}
        if answer is Answer.NO:
            return {"anonymous": False}
        dispatcher.utter_message(response="utter_anonymous_unclear")
        return {"anonymous": None}


class ActionReadBack(Action):
    def name(self) -> str:
        return "action_read_back"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        read_back(dispatcher, current_slots(tracker))
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
            dispatcher.utter_message(response="utter_nothing_to_submit")
            return _reset()
        try:
            await spool.flush(client)
            result = await client.submit(payload)
        except IntakeUnavailable as exc:
            logger.warning("intake down, spooling %s: %s", payload["client_ref"], exc)
            spool.save(payload)
            dispatcher.utter_message(response="utter_submit_spooled")
            return _reset()
        except IntakeError as exc:
            if exc.message:
                dispatcher.utter_message(response="utter_submit_refused", reason=exc.message.rstrip("。！!. "))
            else:
                dispatcher.utter_message(response="utter_submit_refused_plain")
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
            if supporters:
                dispatcher.utter_message(response="utter_submitted_merged_count", number=number,
                                         supporters=supporters)
            else:
                dispatcher.utter_message(response="utter_submitted_merged", number=number)
            return _reset()
        if decision == "ask" and candidates:
            best = candidates[0]
            # The service sends only a redacted subject of the other case: shown as it comes.
            dispatcher.utter_message(response="utter_merge_offer", number=number,
                                     supporters=best.get("supporters", 1),
                                     other_number=best.get("case_number"), other_subject=best.get("subject_line") or "")
            return _reset() + [
                SlotSet("awaiting", "merge"),
                SlotSet("submission_id", result.get("submission_id")),
                SlotSet("merge_target", best.get("case_number")),
                SlotSet("own_case_number", number),
            ]
        topic = (result.get("topic") or {}).get("name")
        if candidates and candidates[0].get("status_label"):
            # A new case that matched a finished one (the service lists it with its status): say so.
            dispatcher.utter_message(response="utter_handled_before", other_number=candidates[0].get("case_number"),
                                     status=candidates[0]["status_label"])
        if topic:
            dispatcher.utter_message(response="utter_submitted_topic", number=number, topic=topic)
        else:
            dispatcher.utter_message(response="utter_submitted", number=number)
        if payload.get("contact"):
            dispatcher.utter_message(response="utter_may_call_back")
        return _reset()


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
    """The resident's answer to the merge offer: only a clear yes merges; anything else keeps their case."""

    def name(self) -> str:
        return "action_merge_decision"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        client = _client()
        submission_id = tracker.get_slot("submission_id")
        target = tracker.get_slot("merge_target")
        own = tracker.get_slot("own_case_number") or ""
        events = _reset()
        if submission_id is None or not target:
            dispatcher.utter_message(response="utter_merge_declined", number=own or "已登记的编号")
            return events
        try:
            # "不是…", "不对", "不要合并" and hesitations are not a yes: merging someone away is the costly error.
            if answers.yes_no(_text(tracker), _intent(tracker)) is Answer.YES:
                result = await client.merge(int(submission_id), str(target), sender=tracker.sender_id,
                                            channel=_channel(tracker))
                number = result.get("case_number", target)
                supporters = result.get("supporters")
                if supporters:
                    dispatcher.utter_message(response="utter_merged_count", number=number, supporters=supporters)
                else:
                    dispatcher.utter_message(response="utter_merged", number=number)
            else:
                await client.keep(int(submission_id), sender=tracker.sender_id, channel=_channel(tracker))
                dispatcher.utter_message(response="utter_kept_separate", number=own)
        except IntakeUnavailable:
            dispatcher.utter_message(response="utter_merge_unavailable", number=own)
        except IntakeError as exc:
            if exc.code == "case_closed":  # the service's message already says it is filed on its own
                dispatcher.utter_message(response="utter_merge_case_closed", message=exc.message, number=own)
            else:
                reason = (exc.message or "操作没有成功").rstrip("。！!. ")
                dispatcher.utter_message(response="utter_merge_failed", reason=reason, number=own)
        return events


class ActionCorrectSlot(Action):
    """'地址说错了，是5号楼' / '电话改成139…': change one answer, then continue or read back again."""

    def name(self) -> str:
        return "action_correct_slot"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        in_form = tracker.active_loop.get("name") == "concern_form"
        if not in_form and not tracker.get_slot("description"):
            dispatcher.utter_message(response="utter_no_draft")
            return []
        text = _text(tracker)
        phone = find_phone(_entity(tracker, "phone") or text)
        slot = correction_target(text, phone is not None)
        # The resident's own words after "改成/是" first (corrected_place): the NLU's place entity is
        # often cut short ("幸福路小学后门那条胡同" → "幸福路"), and a correction replaces the whole place.
        value = (corrected_place(text, _entity(tracker, "place")) if slot in (None, "place")
                 else correction_value(text))
        if slot is None:
            slot = "place" if value else None
        if slot is None:
            dispatcher.utter_message(response="utter_which_correction")
            return [] if in_form else [SlotSet("awaiting", "confirm")]
        label = SLOT_LABELS.get(slot, "这一项")
        updates = self._updates(tracker, slot, value, phone, text)
        if updates is None:
            # We know what to change but not to what: ask for it through the form again.
            dispatcher.utter_message(response="utter_refill_field", field=label)
            events: list[EventType] = [SlotSet(slot, None)]
            return events if in_form else events + [SlotSet("awaiting", None), FollowupAction("concern_form")]
        events = [SlotSet(name, val) for name, val in updates.items()]
        if in_form:
            dispatcher.utter_message(response="utter_field_changed", field=label)
            return events
        # Read back the corrected summary with the new values.
        dispatcher.utter_message(response="utter_corrected")
        read_back(dispatcher, {**current_slots(tracker), **updates})
        return events + [SlotSet("awaiting", "confirm")]

    @staticmethod
    def _updates(tracker: Tracker, slot: str, value: str, phone: str | None,
                 text: str) -> dict[str, Any] | None:
        if slot == "phone":
            if phone:
                return {"phone": phone, "contact_consent": True}
            if answers.yes_no(text) is Answer.NO or "不留" in text:
                return {"phone": None, "contact_consent": False}
            return None
        if slot == "anonymous":
            answer = answers.anonymity(text)
            return None if answer not in (Answer.YES, Answer.NO) else {"anonymous": answer is Answer.YES}
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
            dispatcher.utter_message(response="utter_merge_declined", number=tracker.get_slot("own_case_number"))
        elif collecting or tracker.get_slot("awaiting"):
            dispatcher.utter_message(response="utter_cancelled")
        else:
            dispatcher.utter_message(response="utter_anything_else")
        return _reset()


def describe_case(dispatcher: CollectingDispatcher, case: dict[str, Any]) -> None:
    number = case.get("case_number", "")
    # The redacted one-line subject when the service sends one (another resident's case shows no more).
    title = case.get("subject_line") or case.get("title") or case.get("summary") or ""
    status = case.get("status_label") or case.get("status")
    if title:
        dispatcher.utter_message(response="utter_case_status_titled", number=number, title=title, status=status)
    else:
        dispatcher.utter_message(response="utter_case_status", number=number, status=status)
    supporters = case.get("supporters")
    if supporters and int(supporters) > 1:
        dispatcher.utter_message(response="utter_case_supporters", supporters=supporters)
    last = case.get("last_update") or {}
    if last.get("note"):
        dispatcher.utter_message(response="utter_case_last_update", when=str(last.get("time") or "")[:10],
                                 note=last["note"])


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
                    dispatcher.utter_message(response="utter_case_not_found", number=number)
                else:
                    describe_case(dispatcher, case)
                return []
            cases = await client.cases_for_sender(tracker.sender_id, _channel(tracker))
        except IntakeUnavailable:
            dispatcher.utter_message(response="utter_lookup_unavailable")
            return []
        if cases:
            if len(cases) > 1:
                dispatcher.utter_message(response="utter_cases_count", count=len(cases))
            describe_case(dispatcher, cases[0])
            return []
        waiting = spool.pending(tracker.sender_id)
        if waiting:
            dispatcher.utter_message(response="utter_cases_pending", count=len(waiting))
            return []
        if await _is_untagged_story(tracker):
            # "我妈申请的高龄津贴半年了还没到账": nothing filed to look up, so this is a concern being told.
            events = await ActionStartConcern().run(dispatcher, tracker, domain)
            return events + [FollowupAction("concern_form")]
        dispatcher.utter_message(response="utter_no_cases")
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
            dispatcher.utter_message(response="utter_handoff_unavailable")
            return []
        dispatcher.utter_message(response="utter_handoff_done")
        return _reset()


def not_understood_before(tracker: Tracker) -> bool:
    """Whether the bot's last answer before this message was already an "I did not understand".

    Read from the raw events (a reverted fallback turn is still in them), so two in a row are seen
    even though the fallback forgets its turn.
    """
    seen_user = False
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "user":
            if seen_user:
                return False  # the previous user turn was answered by something else (or not at all)
            seen_user = True
        elif kind == "bot" and seen_user:
            return (event.get("metadata") or {}).get("utter_action") in NOT_UNDERSTOOD
    return False


class ActionCoreFallback(Action):
    """When no rule or story fits, or the NLU is unsure.

    A pending read-back or merge offer is answered (nothing is lost); a story without complaint words
    opens a concern; otherwise say so once, and the second time in a row offer a person. The turn is
    forgotten so a running form and its draft are not disturbed.
    """

    def name(self) -> str:
        return "action_core_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        from actions.pending import answer_pending  # the pending answer imports this module

        if tracker.get_slot("awaiting") and not tracker.active_loop_name:
            return await answer_pending(dispatcher, tracker)
        if await _is_untagged_story(tracker):
            # A whole story that the NLU filed under "inform" (no 投诉/反映 words): it is a concern.
            events = await ActionStartConcern().run(dispatcher, tracker, domain)
            return events + [FollowupAction("concern_form")]
        if not_understood_before(tracker):
            dispatcher.utter_message(response="utter_offer_handoff")
        elif tracker.active_loop_name:
            dispatcher.utter_message(response="utter_fallback_in_form")
        elif _intent(tracker) == "nlu_fallback":
            dispatcher.utter_message(response="utter_fallback")
        else:
            dispatcher.utter_message(response="utter_core_fallback")
        return [UserUtteranceReverted()]


async def _is_untagged_story(tracker: Tracker) -> bool:
    """Outside the form and any pending question, a substantive message is a concern being told."""
    if tracker.active_loop_name or tracker.get_slot("awaiting"):
        return False
    if _intent(tracker) not in ("inform", "report_concern", "give_suggestion", "nlu_fallback", "chitchat",
                                "out_of_scope", "correct_info", "ask_progress"):
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
            dispatcher.utter_message(response="utter_photo_in_form")
        else:
            dispatcher.utter_message(response="utter_photo_outside_form")
        return [SlotSet("media", media[:9])]
