"""The one redaction path: each detector, the look-alikes it must leave alone, consent, the fail-safe,
the phone reader, the log filter (in a real process) and `shangliang eval redaction`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import REPO_ROOT
from bot.text import redact as redact_module
from bot.text.pii import find_phone
from bot.text.redact import FULL, HIDDEN, redact, redact_log_record, subject_line


@pytest.mark.parametrize(("text", "secret", "kind"), [
    ("我的手机13612345678，请回电", "13612345678", "phone"),
    ("电话 136 1234 5678", "136 1234 5678", "phone"),
    ("电话136-1234-5678", "136-1234-5678", "phone"),
    ("号码+86 139 1234 5678", "139 1234 5678", "phone"),
    ("号码+8613912345678", "13912345678", "phone"),
    ("手机号１３６１２３４５６７８", "１３６１２３４５６７８", "phone"),
    ("打0086-13512345678", "13512345678", "phone"),
    ("家里座机057188886666", "057188886666", "phone"),
    ("座机0571-8888666", "0571-8888666", "phone"),
    ("座机(0571)88886666", "88886666", "phone"),
    ("座机（０５７１）８８８８６６６６", "８８８８６６６６", "phone"),
    ("固话：87654321，本地号码", "87654321", "phone"),
    ("身份证号330106199001011234", "330106199001011234", "id_card"),
    ("身份证33010619850315123X", "33010619850315123X", "id_card"),
    ("老身份证330106800101123", "330106800101123", "id_card"),
    ("工资卡号6222021234567890123", "6222021234567890123", "bank_card"),
    ("银行卡 6228 4800 1234 5678 901", "6228 4800 1234 5678 901", "bank_card"),
    ("邮箱zhangsan@163.com", "zhangsan@163.com", "email"),
    ("邮箱ｗａｎｇ＠ｓｉｎａ．ｃｏｍ", "ｗａｎｇ＠ｓｉｎａ．ｃｏｍ", "email"),
    ("车牌浙A12345被锁了", "浙A12345", "plate"),
    ("浙AD12345的新能源车占着充电桩", "浙AD12345", "plate"),
    ("粤B12345F的货车半夜装卸", "粤B12345F", "plate"),
    ("我叫张伟，住在柳岸社区", "张伟", "name"),
    ("我叫欧阳明，电梯老坏", "欧阳明", "name"),
    ("联系人：赵敏，电话找我", "赵敏", "name"),
    ("我姓李，是三楼的住户", "我姓李", "name"),
    ("王师傅说明天再来修", "王师傅", "name"),
    ("我是5号楼301的李建华，楼下吵", "李建华", "name"),
    ("我家住3-2-502，楼顶漏水", "502", "room"),
    ("我们502户的下水道经常堵", "502户", "room"),
    ("住在5号楼3单元1102", "1102", "room"),
    ("301室楼上每天装修", "301室", "room"),
])
def test_each_kind_is_masked(text: str, secret: str, kind: str) -> None:
    assert secret not in redact(text)
    assert kind in {s.kind for s in FULL.spans(text)}


@pytest.mark.parametrize("text", [
    "3号楼电梯坏了三个月，物业一直不修。",
    "我是业主，小区电梯坏了三个月，物业一直不修。",
    "我是外地人，在这里打工。",
    "2023年买的房子，到现在还没办下房产证。",
    "12月5日晚上小区停电了。",
    "物业费每月3500元，太贵了。",
    "10路公交车改线以后很不方便。",
    "502路公交车班次太少。",
    "3单元门口的垃圾桶满了。",
    "小区有300户居民，只有一个出入口。",
    "打了12345热线，没人回复。",
    "订单号202312051234567890，预付卡店铺跑路了。",
    "快递单号773012345678901，包裹丢了。",
    "我是王府井小区的，门口占道经营。",
    "我是李家村的村民，村里的路坏了。",
    "我是马路对面的商户，门口一直在挖路。",
    "我是浙A牌照的车主，限行政策不合理。",
    "301国道上大货车太多。",
    "2024-03-15起实行新的停车收费标准。",
])
def test_look_alikes_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_flat_is_masked_but_building_and_unit_stay() -> None:
    assert redact("我是5号楼301的住户") == "我是5号楼[门牌已隐去]的住户"
    assert redact("住3-2-502") == "住3-2-[门牌已隐去]"
    assert redact("2单元501室楼上漏水") == "2单元[门牌已隐去]楼上漏水"
    assert redact("5号楼301到305都漏水") == "5号楼[门牌已隐去]到[门牌已隐去]都漏水"
    assert redact("我住301，楼上是401") == "我住[门牌已隐去]，楼上是[门牌已隐去]"
    assert redact("我住301国道旁边") == "我住301国道旁边"


def test_titles_and_families_are_not_given_names() -> None:
    assert redact("我是张老师的学生") == "我是某老师的学生"
    assert redact("我是陈家的邻居") == "我是陈家的邻居"


def test_spans_point_at_the_residents_own_full_width_characters() -> None:
    text = "我的电话１３６　１２３４　５６７８，谢谢"
    (span,) = FULL.spans(text)
    assert text[span.start:span.end] == "１３６　１２３４　５６７８"
    assert redact(text) == "我的电话[电话已隐去]，谢谢"  # everything else exactly as written


def test_the_issue_example_hides_everything() -> None:
    text = ("我是5号楼301的李建华，电话13612345678，另一个号码用全角数字写１３７１２３４５６７８，"
            "家里座机057188886666（没写横杠），身份证号330106199203041234")
    clean = redact(text)
    for secret in ("301", "李建华", "建华", "13612345678", "１３７１２３４５６７８", "057188886666",
                   "330106199203041234"):
        assert secret not in clean
    assert "5号楼" in clean and clean.startswith("我是5号楼")


def test_consent_keeps_contact_but_never_id_card_or_flat() -> None:
    text = "我叫张三，电话13812345678，身份证430102199001011234，住3-2-502"
    kept = redact(text, keep_contact=True)
    assert "张三" in kept and "13812345678" in kept
    assert "430102199001011234" not in kept and "502" not in kept


def test_known_contact_name_is_masked_anywhere() -> None:
    assert redact("欧阳娜娜反映楼道灯不亮", known_names=["欧阳娜娜"]) == "欧阳某反映楼道灯不亮"


def test_subject_line_is_redacted_and_short() -> None:
    line = subject_line("我叫张伟，电话13612345678。楼下烧烤店油烟太大", limit=30)
    assert "张伟" not in line and "13612345678" not in line and len(line) <= 30
    assert subject_line("我叫张伟，楼下烧烤店油烟很大，电话13612345678", limit=22) == "我叫张某，楼下烧烤店油烟很大，电话…"


def test_failure_hides_the_whole_text_and_logs_only_the_exception_type(monkeypatch, caplog) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom 13612345678")

    monkeypatch.setattr(redact_module, "find_all", broken)
    with caplog.at_level(logging.ERROR, logger="bot.text.redact"):
        assert redact("我叫张伟，电话13612345678") == HIDDEN
        assert subject_line("我叫张伟，电话13612345678") == HIDDEN
    assert "RuntimeError" in caplog.text
    assert "13612345678" not in caplog.text and "张伟" not in caplog.text


@pytest.mark.parametrize(("text", "phone"), [
    ("我的电话13800138000，请联系我", "13800138000"),
    ("手机 138-0013-8000", "13800138000"),
    ("+86 13912345678 白天都在", "13912345678"),
    ("１３６１２３４５６７８", "13612345678"),
    ("座机0755-86001234", "0755-86001234"),
    ("家里座机057188886666", "0571-88886666"),
    ("办公室电话 010 62751234", "010-62751234"),
    ("（0571）8888 6666", "0571-88886666"),
    ("座机：87654321", "87654321"),
])
def test_find_phone_normalises(text: str, phone: str) -> None:
    assert find_phone(text) == phone


@pytest.mark.parametrize("text", ["12345", "订单号 2023051812345678", "3号楼1201室", "身份证11010519491231002X",
                                  "12345热线打了没用", "物业费3500元"])
def test_find_phone_ignores_other_numbers(text: str) -> None:
    assert find_phone(text) is None


def test_log_filter_redacts_message_and_args() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "spooling %s: %s", ("web-1", "我叫张伟，电话13612345678"),
                               None)
    assert redact_log_record(record) is True
    assert record.getMessage() == "spooling web-1: 我叫张某，电话[电话已隐去]"


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SHANGLIANG_VAR": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=True)


def test_installed_filter_keeps_phones_out_of_a_log_file(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    _python(
        "import logging\n"
        "from bot.text.redact import install_log_redaction\n"
        f"logging.basicConfig(filename={str(log_file)!r}, level=logging.INFO)\n"
        "install_log_redaction()\n"
        "h = logging.FileHandler(" + repr(str(log_file)) + ")\n"  # a handler added later is covered too
        "logging.getLogger('late').addHandler(h)\n"
        "logging.getLogger('late').warning('resident said %s', '手机１３６１２３４５６７８，住5号楼301')\n",
        tmp_path)
    written = log_file.read_text(encoding="utf-8")
    assert "resident said" in written
    assert "１３６１２３４５６７８" not in written and "13612345678" not in written and "301" not in written


def test_action_server_and_cli_install_the_filter(tmp_path: Path) -> None:
    out = _python(
        "import logging\n"
        "import actions\n"
        "print(getattr(logging.getLogRecordFactory(), 'redacts', False))\n", tmp_path)
    assert out.stdout.strip() == "True"


def test_eval_command_scores_spans(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    rows = [
        {"id": "a", "text": "电话13612345678", "spans": [{"start": 2, "end": 13, "kind": "phone"}], "split": "dev"},
        {"id": "b", "text": "杜鹃说楼道灯坏了", "spans": [{"start": 0, "end": 2, "kind": "name"}], "split": "dev"},
        {"id": "c", "text": "3号楼电梯坏了", "spans": [], "split": "dev"},
        {"id": "d", "text": "手机13712345678", "spans": [{"start": 2, "end": 13, "kind": "phone"}], "split": "test"},
    ]
    cases.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SHANGLIANG_VAR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "bot.cli", "eval", "redaction", "--cases", str(cases)],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["cases"] == 3  # the dev split only
    assert result["per_kind"]["phone"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 1, "fp": 0, "fn": 0}
    assert result["per_kind"]["name"]["recall"] == 0.0  # a name without a cue is not found
    assert result["overall"]["recall"] == 0.5 and result["look_alikes_untouched"] == 1.0
