"""The form's questions, one `action_ask_<slot>` each (Rasa asks with these when they exist).

The wording is in domain.yml (`utter_ask_<slot>`); an action chooses the variant: a suggestion's
place question, and "收到您的位置：…" when a location message opened the concern.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict


class _AskSlot(Action):
    slot = ""

    def name(self) -> str:
        return f"action_ask_{self.slot}"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        place = tracker.get_slot("place")
        if self.slot == "description" and intent == "share_location" and place:
            dispatcher.utter_message(response="utter_ask_description_at_location", place=place)
        elif self.slot == "place" and tracker.get_slot("kind") == "suggestion":
            dispatcher.utter_message(response="utter_ask_place_suggestion")
        else:
            dispatcher.utter_message(response=f"utter_ask_{self.slot}")
        return []


class AskDescription(_AskSlot):
    slot = "description"


class AskPlace(_AskSlot):
    slot = "place"


class AskSinceWhen(_AskSlot):
    slot = "since_when"


class AskScope(_AskSlot):
    slot = "scope"


class AskContactConsent(_AskSlot):
    slot = "contact_consent"


class AskPhone(_AskSlot):
    slot = "phone"


class AskAnonymous(_AskSlot):
    slot = "anonymous"
