"""The one place that reads a reply to a pending question: the read-back, "确定不提交了吗？", a merge offer.

Whatever the NLU made of the reply, it comes here while `awaiting` is set (rules in
nlu_data/rules/pending.yml, and action_core_fallback for anything else), so a reply the NLU
misfiles never drops the draft: only a clear confirm files it, only a confirmed cancel drops it,
and anything unclear shows the same read-back again.
"""

from __future__ import annotations

import re

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.actions import (
    ActionCancelConcern,
    ActionCorrectSlot,
    ActionMergeDecision,
    ActionSubmitConcern,
    current_slots,
    read_back,
)
from actions.parsing import correction_target, correction_value
from bot.text import answers
from bot.text.answers import Answer, ReadBack
from bot.text.pii import find_phone

# A greeting is no answer: "你好" must not read as "好" and file the concern.
_GREETING = re.compile(r"[你您]们?好[啊呀吗嘛呢]?|大家好|hello|hi(?![a-z])", re.IGNORECASE)


def _says_what_to_change(text: str, intent: str | None) -> bool:
    """"地址改成5号楼" names the field; a bare "2", "要改" or "不是，还是交吧" does not (the words after
    "是" are only taken as a new value when the NLU also read a correction)."""
    if correction_target(text, find_phone(text) is not None):
        return True
    return intent == "correct_info" and bool(correction_value(text))


async def answer_pending(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """Answer the reply to whatever `awaiting` says is pending; always ends the turn listening."""
    awaiting = tracker.get_slot("awaiting")
    text = _GREETING.sub(" ", str(tracker.latest_message.get("text") or ""))
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    if awaiting == "merge":
        events = await ActionMergeDecision().run(dispatcher, tracker, {})
    elif awaiting == "cancel_check":
        events = await _answer_cancel_check(dispatcher, tracker, text, intent)
    else:
        events = await _answer_read_back(dispatcher, tracker, text, intent)
    if any(event.get("event") == "followup" for event in events):
        return events  # a correction that re-opens the form hands over to it
    # The outcome (filed, offer, still confirming, ...) is decided here, not by the policy.
    return events + [FollowupAction("action_listen")]


async def _answer_read_back(dispatcher: CollectingDispatcher, tracker: Tracker, text: str,
                            intent: str | None) -> list[EventType]:
    reading = answers.read_back(text, intent)
    if intent == "correct_info" and reading is not ReadBack.CANCEL and _says_what_to_change(text, intent):
        reading = ReadBack.CHANGE
    if reading is ReadBack.CONFIRM:
        return await ActionSubmitConcern().run(dispatcher, tracker, {})
    if reading is ReadBack.CANCEL:
        dispatcher.utter_message(response="utter_cancel_check")
        return [SlotSet("awaiting", "cancel_check")]
    if reading is ReadBack.HESITATE:
        dispatcher.utter_message(response="utter_read_back_hesitate")
        return [SlotSet("awaiting", "confirm")]
    if reading is ReadBack.CHANGE:
        if _says_what_to_change(text, intent):
            return await ActionCorrectSlot().run(dispatcher, tracker, {})
        dispatcher.utter_message(response="utter_ask_correction")
        return [SlotSet("awaiting", "confirm")]
    dispatcher.utter_message(response="utter_read_back_unclear")
    read_back(dispatcher, current_slots(tracker))
    return [SlotSet("awaiting", "confirm")]


async def _answer_cancel_check(dispatcher: CollectingDispatcher, tracker: Tracker, text: str,
                               intent: str | None) -> list[EventType]:
    """"确定不提交了吗？": yes (or cancelling again) drops the draft; anything else goes back to it."""
    if answers.yes_no(text, intent) is Answer.YES or answers.read_back(text, intent) is ReadBack.CANCEL:
        return await ActionCancelConcern().run(dispatcher, tracker, {})
    read_back(dispatcher, current_slots(tracker))
    return [SlotSet("awaiting", "confirm")]


class ActionPendingAnswer(Action):
    def name(self) -> str:
        return "action_pending_answer"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        return await answer_pending(dispatcher, tracker)
