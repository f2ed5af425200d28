"""The form's questions, one `action_ask_<slot>` each (Rasa asks with these when they exist).

They live here rather than as `utter_ask_*` responses because `rasa data validate` reports form
responses as unused, and we keep validation free of warnings.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

QUESTIONS: dict[str, str] = {
    "description": "请您具体说说遇到了什么问题：发生了什么、给您带来了哪些影响？",
    "place": "这件事发生在哪里？请尽量具体到区、街道、小区或楼栋，比如“新华区和平街道阳光小区5号楼”。",
    "since_when": "这种情况大概从什么时候开始的？记不清可以说“不清楚”或“跳过”。",
    "scope": "大概影响到多少人或多大范围？比如“整栋楼”“附近几个小区”。不清楚也可以说“跳过”。",
    "contact_consent": "为了方便工作人员回访，您愿意留个联系电话吗？号码只用于这件事的回访，不会公开。"
                       "愿意请说“可以”，不想留说“不留”就行。",
    "phone": "好的，请告诉我您的手机号（11位）或带区号的座机号。改主意了也可以说“不留”。",
    "anonymous": "转给委员的材料里需要隐去您的身份（匿名）吗？请回答“匿名”或“不用”。",
}
# For suggestions the place question is phrased differently: a whole city is a fine answer.
SUGGESTION_PLACE = "这个建议针对哪里？可以是某个小区、某条路，也可以说“全市”“全区”。"


class _AskSlot(Action):
    slot = ""

    def name(self) -> str:
        return f"action_ask_{self.slot}"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        text = QUESTIONS[self.slot]
        if self.slot == "place" and tracker.get_slot("kind") == "suggestion":
            text = SUGGESTION_PLACE
        dispatcher.utter_message(text=text)
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
