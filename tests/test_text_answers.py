"""bot.text.answers on the project's own Rasa examples and on resident-style answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.text.answers import Answer, ReadBack, anonymity, consent, read_back, yes_no

NLU_DIR = Path(__file__).resolve().parents[1] / "nlu_data" / "nlu"


def _examples(intent: str) -> list[str]:
    found: list[str] = []
    for path in sorted(NLU_DIR.glob("*.yml")):
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu", []):
            if item.get("intent") == intent:
                found += [line[2:].strip() for line in item["examples"].splitlines() if line.startswith("- ")]
    return found


def test_the_training_data_has_examples() -> None:
    assert len(_examples("affirm")) >= 50 and len(_examples("deny")) >= 50


@pytest.mark.parametrize("intent", ["affirm", "deny"])
def test_every_rasa_example_reads_as_its_intent(intent: str) -> None:
    want = Answer.YES if intent == "affirm" else Answer.NO
    wrong = [text for text in _examples(intent) if yes_no(text) is not want]
    assert wrong == []


def test_no_deny_example_reads_as_yes_whatever_the_intent_says() -> None:
    # The intent is the last resort: a misclassified "不是很想" must still not be a yes.
    assert [t for t in _examples("deny") if yes_no(t, "affirm") is Answer.YES] == []


@pytest.mark.parametrize("text", [
    "不是", "不是的，我不同意", "不对", "不太想", "不太愿意", "不同意", "不是很想留", "算了吧", "不了不了", "no啦",
    "NO", "nope", "那倒没有", "别了吧", "不要合并，我这个是另外一件事", "不不不不", "🙅", "不行不行不行",
    "并不想", "不怎么想", "不大愿意", "我觉得不是一回事", "不用了哈谢谢",
])
def test_negations_and_refusals_are_no(text: str) -> None:
    assert yes_no(text) is Answer.NO


@pytest.mark.parametrize("text", ["再考虑一下", "让我想想", "我再想想吧", "等一下", "稍等", "不确定", "说不好",
                                  "还没想好", "嗯…我考虑考虑", "不太确定"])
def test_hedges_are_hesitant_not_yes(text: str) -> None:
    assert yes_no(text) is Answer.HESITANT


@pytest.mark.parametrize("text", [
    "嗯嗯", "中", "中中", "没毛病", "OK", "ok", "ｏｋ", "好滴", "可以的", "👌", "没问题", "木有问题", "不错不错",
    "是的是的", "对对对", "好的👍", "行", "成", "嗯呐好的", "yes", "Yes!", "没什么问题", "可以，打这个电话就行",
    "好的吧", "确定", "对的！！！", "嗯嗯嗯嗯嗯嗯", "好好好好好", "不是不行",
])
def test_colloquial_yes(text: str) -> None:
    assert yes_no(text) is Answer.YES


@pytest.mark.parametrize("text", ["为什么要留电话？", "是吗", "什么意思", "可以吗？", "啊？", "", "   ", "😂😂",
                                  "asdfgh", "今天天气怎么样"])
def test_questions_and_noise_are_unknown(text: str) -> None:
    assert yes_no(text) is Answer.UNKNOWN


def test_intent_is_the_last_resort() -> None:
    assert yes_no("随你们", "affirm") is Answer.YES
    assert yes_no("随你们", "deny") is Answer.NO
    assert yes_no("随你们") is Answer.UNKNOWN
    # Wording beats the intent in both directions.
    assert yes_no("不是", "affirm") is Answer.NO
    assert yes_no("没问题", "deny") is Answer.YES


def test_politeness_is_not_a_negation() -> None:
    assert yes_no("不好意思，可以的") is Answer.YES
    assert yes_no("不好意思，不用了") is Answer.NO


@pytest.mark.parametrize(("text", "want"), [
    ("1", ReadBack.CONFIRM), ("１", ReadBack.CONFIRM), ("回复1", ReadBack.CONFIRM), ("1确认", ReadBack.CONFIRM),
    ("2", ReadBack.CHANGE), ("２", ReadBack.CHANGE), ("选2", ReadBack.CHANGE), ("3", ReadBack.CANCEL),
    ("三", ReadBack.CANCEL), ("3。", ReadBack.CANCEL),
    ("就这样吧，帮我交上去", ReadBack.CONFIRM), ("提交吧", ReadBack.CONFIRM), ("没问题发吧", ReadBack.CONFIRM),
    ("对的没错", ReadBack.CONFIRM), ("嗯嗯", ReadBack.CONFIRM), ("好的", ReadBack.CONFIRM),
    ("确认提交", ReadBack.CONFIRM), ("可以了，就这些", ReadBack.CONFIRM), ("OK👌", ReadBack.CONFIRM),
    ("就这么报上去吧谢谢", ReadBack.CONFIRM), ("没毛病", ReadBack.CONFIRM),
    ("让我再想想", ReadBack.HESITATE), ("等一下", ReadBack.HESITATE), ("先别提交", ReadBack.HESITATE),
    ("我考虑一下再说", ReadBack.HESITATE), ("先不发，我问问邻居", ReadBack.HESITATE), ("稍等一会", ReadBack.HESITATE),
    ("取消", ReadBack.CANCEL), ("算了吧", ReadBack.CANCEL), ("不提交了", ReadBack.CANCEL),
    ("不用了", ReadBack.CANCEL), ("不投诉了，谢谢", ReadBack.CANCEL), ("撤回", ReadBack.CANCEL),
    ("地址不对", ReadBack.CHANGE), ("要改一下", ReadBack.CHANGE), ("电话写错了", ReadBack.CHANGE),
    ("不是3号楼，是5号楼", ReadBack.CHANGE), ("还有一点要补充", ReadBack.CHANGE), ("不对", ReadBack.CHANGE),
    ("不是", ReadBack.CHANGE), ("内容都对，提交吧", ReadBack.CONFIRM), ("电话没问题，交吧", ReadBack.CONFIRM),
    ("地址", ReadBack.CHANGE), ("好的，不过地址要改一下", ReadBack.CHANGE), ("电话号码写错了", ReadBack.CHANGE),
    ("嗯就这样吧帮我交上去", ReadBack.CONFIRM), ("等一下我想想", ReadBack.HESITATE),
    ("不用了不想提交了", ReadBack.CANCEL),
    ("3号楼", ReadBack.UNKNOWN), ("今天天气怎么样哈哈哈哈", ReadBack.UNKNOWN), ("？？", ReadBack.UNKNOWN),
    ("", ReadBack.UNKNOWN),
])
def test_read_back(text: str, want: ReadBack) -> None:
    assert read_back(text) is want


def test_read_back_of_the_rasa_examples() -> None:
    """Every cancel example cancels or keeps the draft; no deny or cancel example confirms a read-back
    except "单独提交吧" (file it on its own: a confirmation here); no affirm example cancels or holds."""
    for text in _examples("cancel"):
        assert read_back(text) in (ReadBack.CANCEL, ReadBack.HESITATE), text
    assert [t for t in _examples("deny") + _examples("cancel") if read_back(t) is ReadBack.CONFIRM] == ["单独提交吧"]
    assert [t for t in _examples("affirm") if read_back(t) is not ReadBack.CONFIRM] == []


def test_read_back_uses_the_intent_only_when_wording_says_nothing() -> None:
    assert read_back("嗯……那个", "affirm") is ReadBack.CONFIRM
    assert read_back("那个", "cancel") is ReadBack.CANCEL
    assert read_back("那个", "correct_info") is ReadBack.CHANGE
    assert read_back("让我想想", "affirm") is ReadBack.HESITATE


@pytest.mark.parametrize(("text", "want"), [
    ("不是很想留", Answer.NO), ("不留", Answer.NO), ("电话就不留了", Answer.NO), ("可以留", Answer.YES),
    ("留吧", Answer.YES), ("行，你们打我电话", Answer.YES), ("我不太想留联系方式", Answer.NO),
])
def test_consent(text: str, want: Answer) -> None:
    assert consent(text) is want


@pytest.mark.parametrize(("text", "want"), [
    ("匿名", Answer.YES), ("需要匿名", Answer.YES), ("别透露我的名字", Answer.YES), ("要的", Answer.YES),
    ("不用匿名", Answer.NO), ("实名就行", Answer.NO), ("不需要", Answer.NO), ("不是很想匿名", Answer.NO),
    ("可以公开", Answer.NO), ("让我想想", Answer.HESITANT),
])
def test_anonymity(text: str, want: Answer) -> None:
    assert anonymity(text) is want


def test_long_pastes_and_voice_text_stay_fast_and_sane() -> None:
    paste = "尊敬的领导您好我们小区门口的路灯坏了好几个月了晚上走路看不见" * 160  # ~5,000 characters
    assert yes_no(paste) in (Answer.YES, Answer.NO, Answer.UNKNOWN, Answer.HESITANT)
    assert read_back("嗯嗯就这样吧没问题帮我提交") is ReadBack.CONFIRM
    assert read_back("不对不对地址说错了") is ReadBack.CHANGE
