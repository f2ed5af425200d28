"""WeChat official-account channel: crypto, parsing, de-duplication, slow path, security.

The channel runs in a real Sanic server on a local port; wechatpy plays WeChat's side (signs and
encrypts real message XML, decrypts the passive reply). A stand-in for Rasa's agent records every
dialogue turn so retries can be counted. The end-to-end test against the real Rasa server uses the
`stack` fixture when it exists.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta

import aiohttp
import pytest
import xmltodict
from sqlalchemy import create_engine
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from bot.channels import campaigns
from bot.channels.msgstore import DELIVERED, MessageStore
from bot.channels.textsplit import pack_replies, split_text
from bot.channels.wechat import WeChatInput
from bot.channels.wechat_api import TokenStore, WeChatAPI
from bot.channels.xmlguard import UnsafeXML, check_xml

try:
    from fake_wechat_server import E2E_ENV, ChannelServer, FakeWeChat
except ImportError:  # tests/ as a package
    from tests.fake_wechat_server import E2E_ENV, ChannelServer, FakeWeChat

TOKEN = E2E_ENV["WECHAT_TOKEN"]
AES_KEY = E2E_ENV["WECHAT_AES_KEY"]  # 43 chars, like WeChat's EncodingAESKey
APP_ID = E2E_ENV["WECHAT_APP_ID"]
OFFICIAL = "gh_test_official"


class FakeAgent:
    """Records dialogue turns and answers like a bot would, optionally slowly."""

    def __init__(self, delay: float = 0.0, reply: str | None = None) -> None:
        self.delay = delay
        self.reply = reply
        self.turns: list = []

    async def __call__(self, message) -> None:
        self.turns.append(message)
        if self.delay:
            await asyncio.sleep(self.delay)
        if message.text.startswith("/start_campaign"):
            return  # the dialogue sets the slot silently; the channel opens with the question
        text = self.reply if self.reply is not None else f"收到：{message.text}"
        await message.output_channel.send_text_message(message.sender_id, text)


def sign(timestamp: str, nonce: str, token: str = TOKEN) -> str:
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce)
    return signer.signature


def wechat_xml(msg_type: str, fields: dict, *, msg_id: int | None = None, sender: str = "oUser1") -> str:
    parts = [
        f"<ToUserName><![CDATA[{OFFICIAL}]]></ToUserName>",
        f"<FromUserName><![CDATA[{sender}]]></FromUserName>",
        f"<CreateTime>{int(time.time())}</CreateTime>",
        f"<MsgType><![CDATA[{msg_type}]]></MsgType>",
    ]
    parts += [f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()]
    if msg_id is not None:
        parts.append(f"<MsgId>{msg_id}</MsgId>")
    return "<xml>" + "".join(parts) + "</xml>"


class WeChatClient:
    """WeChat's side of the conversation: signs, optionally encrypts, posts and decodes replies."""

    def __init__(self, url: str, aes: bool) -> None:
        self.url = url
        self.aes = aes
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)

    async def post_raw(self, body: bytes | str, params: dict) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http:
            async with http.post(self.url, params=params, data=body) as resp:
                return resp.status, await resp.text()

    async def send(self, xml: str) -> tuple[int, dict | None, float]:
        """POST one message; returns (status, decoded passive reply or None, seconds taken)."""
        timestamp, nonce = str(int(time.time())), "n0nce123"
        params = {"signature": sign(timestamp, nonce), "timestamp": timestamp, "nonce": nonce, "openid": "oUser1"}
        body = xml
        if self.aes:
            body = self.crypto.encrypt_message(xml, nonce, timestamp)
            params.update(encrypt_type="aes", msg_signature=xmltodict.parse(body)["xml"]["MsgSignature"])
        start = time.perf_counter()
        status, text = await self.post_raw(body, params)
        elapsed = time.perf_counter() - start
        if status != 200 or text in ("success", ""):
            return status, None, elapsed
        if self.aes:
            outer = xmltodict.parse(text)["xml"]
            text = self.crypto.decrypt_message(text, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
        return status, xmltodict.parse(text)["xml"], elapsed


@pytest.fixture()
def engine(tmp_path):
    return create_engine(f"sqlite:///{tmp_path / 'channels.db'}", future=True)


@pytest.fixture()
async def fake():
    server = FakeWeChat(app_id=APP_ID)
    await server.start()
    yield server
    await server.stop()


def make_channel(engine, fake: FakeWeChat, **overrides) -> WeChatInput:
    options = dict(token=TOKEN, app_id=APP_ID, app_secret=fake.app_secret, aes_key=AES_KEY,
                   api_base=fake.base_url, reply_timeout=1.0, engine=engine)
    options.update(overrides)
    return WeChatInput(**options)


@pytest.fixture()
async def served(engine, fake):
    """Factory: (channel, agent, client) for a channel served on a local port."""
    servers: list[ChannelServer] = []

    async def factory(agent: FakeAgent, *, aes: bool = True, **overrides):
        channel = make_channel(engine, fake, **overrides)
        server = ChannelServer(channel, agent)
        url = await server.start()
        servers.append(server)
        return channel, WeChatClient(url, aes)

    yield factory
    for server in servers:
        await server.channel.drain()
        await server.stop()


# --- message types, both modes -------------------------------------------------------------


@pytest.mark.parametrize("aes", [False, True], ids=["plain", "safe-mode"])
async def test_text_message_gets_passive_reply(served, aes):
    agent = FakeAgent()
    _, client = await served(agent, aes=aes)
    status, reply, elapsed = await client.send(wechat_xml("text", {"Content": "小区门口路灯坏了"}, msg_id=1001))
    assert status == 200
    assert reply["MsgType"] == "text"
    assert reply["Content"] == "收到：小区门口路灯坏了"
    assert reply["ToUserName"] == "oUser1" and reply["FromUserName"] == OFFICIAL
    assert len(agent.turns) == 1
    turn = agent.turns[0]
    assert turn.sender_id == "oUser1" and turn.input_channel == "wechat"
    assert turn.metadata["msg_type"] == "text"
    assert elapsed < 1.0


async def test_voice_with_recognition_goes_to_dialogue(served):
    agent = FakeAgent()
    _, client = await served(agent)
    xml = wechat_xml("voice", {"MediaId": "m1", "Format": "amr", "Recognition": "楼道里堆满了杂物"}, msg_id=1002)
    _, reply, _ = await client.send(xml)
    assert reply["Content"] == "收到：楼道里堆满了杂物"
    assert agent.turns[0].metadata["voice"]["media_id"] == "m1"


async def test_voice_without_recognition_asks_to_type(served):
    agent = FakeAgent()
    _, client = await served(agent)
    _, reply, _ = await client.send(wechat_xml("voice", {"MediaId": "m2", "Format": "amr"}, msg_id=1003))
    assert "语音" in reply["Content"] and "打字" in reply["Content"]
    assert agent.turns == []  # nothing reached the dialogue


async def test_image_is_passed_as_media_metadata(served):
    agent = FakeAgent(reply="")  # a dialogue with nothing to say: the channel confirms receipt
    _, client = await served(agent)
    xml = wechat_xml("image", {"PicUrl": "http://mmbiz.example/pic.jpg", "MediaId": "img-1"}, msg_id=1004)
    _, reply, _ = await client.send(xml)
    assert "照片收到了" in reply["Content"]
    turn = agent.turns[0]
    assert turn.text == "/share_media"
    assert turn.metadata["media"] == [{"type": "image", "url": "http://mmbiz.example/pic.jpg", "media_id": "img-1"}]


async def test_location_sends_label_and_coordinates(served):
    agent = FakeAgent()
    _, client = await served(agent)
    fields = {"Location_X": "23.134521", "Location_Y": "113.358803", "Scale": "20", "Label": "天河区体育西路103号"}
    _, reply, _ = await client.send(wechat_xml("location", fields, msg_id=1005))
    assert agent.turns[0].text == "/share_location"  # the dialogue reads the place from the metadata
    assert reply["Content"] == "收到：/share_location"
    assert agent.turns[0].metadata["location"]["latitude"] == "23.134521"
    assert agent.turns[0].metadata["location"]["label"] == "天河区体育西路103号"


async def test_subscribe_welcomes_without_dialogue(served):
    agent = FakeAgent()
    _, client = await served(agent)
    _, reply, _ = await client.send(wechat_xml("event", {"Event": "subscribe", "EventKey": ""}))
    assert "欢迎" in reply["Content"]
    assert agent.turns == []


async def test_unsubscribe_answers_success(served):
    agent = FakeAgent()
    _, client = await served(agent)
    status, reply, _ = await client.send(wechat_xml("event", {"Event": "unsubscribe", "EventKey": ""}))
    assert status == 200 and reply is None and agent.turns == []


@pytest.mark.parametrize("event,key", [("subscribe", "qrscene_{scene}"), ("SCAN", "{scene}")])
async def test_campaign_qr_scene_tags_conversation(served, engine, event, key):
    info = campaigns.create_campaign(engine, title="老旧小区加装电梯", question="您所在的小区加装电梯遇到了哪些难处？")
    agent = FakeAgent()
    _, client = await served(agent)
    fields = {"Event": event, "EventKey": key.format(scene=info.scene), "Ticket": "t"}
    _, reply, _ = await client.send(wechat_xml("event", fields))
    assert "老旧小区加装电梯" in reply["Content"] and info.question in reply["Content"]
    turn = agent.turns[0]
    assert turn.text == "/start_campaign" + json.dumps({"campaign": info.scene})
    assert turn.metadata["campaign"] == info.scene


async def test_closed_campaign_says_so(served, engine):
    past = datetime.utcnow() - timedelta(days=10)
    info = campaigns.create_campaign(engine, title="旧专题", question="？", opens_at=past - timedelta(days=5), closes_at=past)
    agent = FakeAgent()
    _, client = await served(agent)
    _, reply, _ = await client.send(wechat_xml("event", {"Event": "SCAN", "EventKey": info.scene}))
    assert "已经结束" in reply["Content"] and agent.turns == []


# --- retries and the slow path -------------------------------------------------------------


async def test_retries_with_same_msgid_make_one_turn(served):
    agent = FakeAgent(delay=0.3)
    _, client = await served(agent)
    xml = wechat_xml("text", {"Content": "垃圾站三天没清运了"}, msg_id=2001)
    results = await asyncio.gather(*(client.send(xml) for _ in range(3)))
    assert len(agent.turns) == 1
    contents = [r[1]["Content"] for r in results if r[1] is not None]
    assert contents == ["收到：垃圾站三天没清运了"] * 3  # every copy gets the same answer
    # A later retry (WeChat lost our answer) gets the same reply, still without a second turn.
    _, again, _ = await client.send(xml)
    assert again["Content"] == "收到：垃圾站三天没清运了"
    assert len(agent.turns) == 1


async def test_slow_reply_goes_out_via_customer_service_api(served, fake, engine):
    agent = FakeAgent(delay=1.6)
    channel, client = await served(agent, reply_timeout=0.5)
    xml = wechat_xml("text", {"Content": "公交站牌被撞坏了"}, msg_id=3001)
    status, reply, elapsed = await client.send(xml)
    assert status == 200 and reply is None and elapsed < 1.2  # answered "success" within the budget
    # WeChat would not retry after "success"; if it does anyway, still no second turn.
    _, retry_reply, _ = await client.send(xml)
    sent = await fake.wait_for("custom_messages", 1)
    assert sent == [{"touser": "oUser1", "msgtype": "text", "text": {"content": "收到：公交站牌被撞坏了"}}]
    assert len(agent.turns) == 1
    await channel.drain()
    assert MessageStore(engine).get("wechat", "3001").status == DELIVERED
    # Exactly one delivery: passive on the retry or by the API, not both.
    assert (retry_reply is None) or len(fake.custom_messages) == 0


async def test_late_reply_kept_when_api_fails_and_resent(served, fake, engine):
    agent = FakeAgent(delay=0.6)
    channel, client = await served(agent, reply_timeout=0.2)
    fake.fail_sends = 1
    await client.send(wechat_xml("text", {"Content": "噪音扰民"}, msg_id=3002))
    await asyncio.sleep(0.8)
    await channel.drain()
    assert fake.custom_messages == []
    assert MessageStore(engine).get("wechat", "3002").status == "failed"
    assert await channel.resend_pending(older_than=timedelta(0)) == 1
    assert fake.custom_messages[0]["text"]["content"] == "收到：噪音扰民"


async def test_long_reply_split_passive_first_then_api(served, fake):
    long_text = "。".join(f"第{i}条说明，内容比较长，需要分成几段发送" for i in range(120)) + "。"
    agent = FakeAgent(reply=long_text)
    channel, client = await served(agent)
    _, reply, _ = await client.send(wechat_xml("text", {"Content": "政策"}, msg_id=4001))
    assert len(reply["Content"].encode()) <= 2048
    await channel.drain()
    rest = fake.custom_messages
    assert len(rest) >= len(long_text.encode()) // 2048  # several messages, none over the limit
    assert rest and all(len(m["text"]["content"].encode()) <= 2048 for m in rest)
    joined = reply["Content"] + "".join(m["text"]["content"] for m in rest)
    assert joined.replace("\n", "") == long_text


# --- security ------------------------------------------------------------------------------


async def test_get_verification(served):
    agent = FakeAgent()
    _, client = await served(agent)
    timestamp, nonce = str(int(time.time())), "abc"
    async with aiohttp.ClientSession() as http:
        ok = await http.get(client.url, params={"signature": sign(timestamp, nonce), "timestamp": timestamp,
                                                "nonce": nonce, "echostr": "echo-42"})
        assert ok.status == 200 and await ok.text() == "echo-42"
        bad = await http.get(client.url, params={"signature": "0" * 40, "timestamp": timestamp, "nonce": nonce,
                                                 "echostr": "echo-42"})
        assert bad.status == 403


@pytest.mark.parametrize("aes", [False, True])
async def test_bad_or_missing_signature_is_403_and_untouched(served, aes):
    agent = FakeAgent()
    _, client = await served(agent, aes=aes)
    timestamp, nonce = str(int(time.time())), "n1"
    xml = wechat_xml("text", {"Content": "hi"}, msg_id=5001)
    assert (await client.post_raw(xml, {"timestamp": timestamp, "nonce": nonce}))[0] == 403
    params = {"signature": sign(timestamp, nonce, token="wrong"), "timestamp": timestamp, "nonce": nonce}
    assert (await client.post_raw(xml, params))[0] == 403
    old = str(int(time.time()) - 3600)  # replay of an old, correctly signed request
    assert (await client.post_raw(xml, {"signature": sign(old, nonce), "timestamp": old, "nonce": nonce}))[0] == 403
    if aes:  # right URL signature, forged msg_signature
        body = client.crypto.encrypt_message(xml, nonce, timestamp)
        params = {"signature": sign(timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
                  "encrypt_type": "aes", "msg_signature": "f" * 40}
        assert (await client.post_raw(body, params))[0] == 403
    assert agent.turns == []


HOSTILE = {
    "doctype": '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x "y">]><xml><Content>&x;</Content></xml>',
    "billion-laughs": '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><xml>&lol2;</xml>',
    "external": '<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>',
    "nesting": "<xml>" + "<a>" * 500 + "</a>" * 500 + "</xml>",
    "malformed": "<xml><Content>unclosed</xml>",
    "not-xml": "hello",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_xml_is_400(served, name):
    agent = FakeAgent()
    _, client = await served(agent, aes=False)
    timestamp, nonce = str(int(time.time())), "n2"
    status, _ = await client.post_raw(HOSTILE[name], {"signature": sign(timestamp, nonce), "timestamp": timestamp,
                                                      "nonce": nonce})
    assert status == 400 and agent.turns == []


async def test_hostile_xml_inside_encryption_is_400(served):
    agent = FakeAgent()
    _, client = await served(agent, aes=True)
    status, _, _ = await client.send(HOSTILE["billion-laughs"])
    assert status == 400 and agent.turns == []


async def test_oversized_body_is_413(served):
    agent = FakeAgent()
    _, client = await served(agent, aes=False, max_body_bytes=4096)
    timestamp, nonce = str(int(time.time())), "n3"
    body = wechat_xml("text", {"Content": "长" * 5000}, msg_id=6001)
    status, _ = await client.post_raw(body, {"signature": sign(timestamp, nonce), "timestamp": timestamp,
                                             "nonce": nonce})
    assert status == 413 and agent.turns == []


def test_secrets_never_logged(engine, caplog):
    caplog.set_level("DEBUG")
    channel = WeChatInput.from_credentials({"token": TOKEN, "app_id": APP_ID, "app_secret": "s3cret-value",
                                            "encoding_aes_key": AES_KEY})
    assert channel.name() == "wechat"
    assert TOKEN not in caplog.text and AES_KEY not in caplog.text and "s3cret-value" not in caplog.text


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("WECHAT_TOKEN", "env-token")
    monkeypatch.setenv("WECHAT_APP_ID", APP_ID)
    monkeypatch.setenv("WECHAT_AES_KEY", AES_KEY)
    monkeypatch.setenv("WECHAT_REPLY_TIMEOUT", "2.5")
    channel = WeChatInput.from_credentials(None)
    assert channel.reply_timeout == 2.5 and channel._crypto is not None and channel._token == "env-token"


# --- pieces --------------------------------------------------------------------------------


def test_xml_guard_accepts_wechat_messages():
    check_xml(wechat_xml("text", {"Content": "<b>不是标签</b>"}, msg_id=1))
    with pytest.raises(UnsafeXML):
        check_xml(HOSTILE["doctype"])


def test_split_text_respects_bytes_and_keeps_everything():
    text = "第一句话。" * 300 + "没有标点的长串" * 200
    chunks = split_text(text, 2048)
    assert all(len(c.encode()) <= 2048 for c in chunks)
    assert "".join(chunks) == text
    assert chunks[0].endswith("。")  # cut after a sentence, not inside one
    assert pack_replies(["你好", "  ", "请说说具体位置"], 2048) == ["你好\n\n请说说具体位置"]


async def test_token_cached_shared_and_refreshed(engine, fake):
    store = TokenStore(engine)
    first = WeChatAPI(APP_ID, fake.app_secret, store, base_url=fake.base_url)
    second = WeChatAPI(APP_ID, fake.app_secret, TokenStore(engine), base_url=fake.base_url)  # another worker
    await first.send_text("oA", "一")
    await second.send_text("oB", "二")
    assert fake.token_requests == 1  # one token for both workers
    fake.expire_token()  # platform says 40001 from now on for that token
    await second.send_text("oC", "三")
    assert fake.token_requests == 2
    await first.send_text("oD", "四")  # picks the refreshed token from the database
    assert fake.token_requests == 2
    assert [m["touser"] for m in fake.custom_messages] == ["oA", "oB", "oC", "oD"]


def test_msgstore_claim_is_exclusive(engine):
    store = MessageStore(engine)
    assert store.claim("wechat", "9", "oU")[0] is True
    owned, record = store.claim("wechat", "9", "oU")
    assert owned is False and record.status == "processing"
    store.set_ready("wechat", "9", ["好的"])
    assert store.take("wechat", "9", "passive") == ["好的"]
    assert store.take("wechat", "9", "api") is None  # delivered once only


# --- the real Rasa server (lead's `stack` fixture) -----------------------------------------


@pytest.mark.e2e
async def test_real_rasa_server_via_wechat_webhook(request):
    """Safe-mode text message to the real Rasa server; needs E2E_ENV in the stack's environment."""
    stack = request.getfixturevalue("stack")
    url = f"{stack.rasa_url}/webhooks/wechat/webhook"
    timestamp, nonce = str(int(time.time())), "e2e"
    async with aiohttp.ClientSession() as http:
        probe = await http.get(url, params={"signature": sign(timestamp, nonce), "timestamp": timestamp,
                                            "nonce": nonce, "echostr": "ping"})
        if probe.status != 200:
            pytest.skip("the stack's Rasa server has no WeChat channel configured with E2E_ENV")
    client = WeChatClient(url, aes=True)
    msg_id = int(time.time() * 1000)
    status, reply, elapsed = await client.send(wechat_xml("text", {"Content": "你好"}, msg_id=msg_id))
    assert status == 200 and elapsed < 5.0
    assert reply is not None and reply["Content"].strip(), json.dumps(reply, ensure_ascii=False)
    # A retry of the same MsgId returns the same answer instead of a second dialogue turn.
    _, again, _ = await client.send(wechat_xml("text", {"Content": "你好"}, msg_id=msg_id))
    assert again is not None and again["Content"] == reply["Content"]


# --- campaigns -----------------------------------------------------------------------------


async def test_campaign_create_cli_makes_qr_codes_and_link(tmp_path, fake, monkeypatch):
    from PIL import Image

    from bot.cli import main
    from bot.config import settings

    monkeypatch.setenv("SHANGLIANG_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SHANGLIANG_PUBLIC_URL", "https://zx.example.gov.cn")
    monkeypatch.setenv("WECHAT_APP_ID", APP_ID)
    monkeypatch.setenv("WECHAT_APP_SECRET", fake.app_secret)
    monkeypatch.setenv("WECHAT_API_BASE", fake.base_url)
    settings.cache_clear()
    try:
        argv = ["campaign", "create", "--title", "背街小巷整治", "--question", "您家附近哪条小巷最需要整治？",
                "--scene", "lane2026", "--closes", (datetime.utcnow() + timedelta(days=7)).date().isoformat()]
        assert await asyncio.to_thread(main, argv) == 0
    finally:
        settings.cache_clear()
    request = fake.qrcode_requests[0]
    assert request["action_name"] == "QR_STR_SCENE"  # closes within 30 days: temporary code
    assert request["action_info"] == {"scene": {"scene_str": "lane2026"}}
    assert 0 < request["expire_seconds"] <= 8 * 86400
    out = tmp_path / "var" / "campaigns"
    for name in ("campaign-lane2026-wechat.png", "campaign-lane2026-web.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] >= 200
    info = campaigns.get_campaign(create_engine(f"sqlite:///{tmp_path / 'cli.db'}"), "lane2026")
    assert info.qr_url == "http://weixin.qq.com/q/fake1" and info.is_open()
    assert campaigns.web_chat_link("https://zx.example.gov.cn/", "lane2026") == \
        "https://zx.example.gov.cn/chat?campaign=lane2026"


def test_campaign_rejects_bad_scene_and_dates(engine):
    with pytest.raises(ValueError):
        campaigns.create_campaign(engine, title="t", question="q", scene="带空格 的")
    now = datetime.utcnow()
    with pytest.raises(ValueError):
        campaigns.create_campaign(engine, title="t", question="q", opens_at=now, closes_at=now - timedelta(days=1))


# --- a real Rasa server with a tiny model, trained here (no dependency on the project's data) ---

TINY_CONFIG = """recipe: default.v1
language: zh
assistant_id: tiny-wechat-test
pipeline:
  - name: KeywordIntentClassifier
policies:
  - name: RulePolicy
"""
TINY_DOMAIN = """version: "3.1"
intents: [greet, share_media, start_campaign]
entities: [campaign]
slots:
  campaign:
    type: text
    influence_conversation: false
    mappings:
      - type: from_entity
        entity: campaign
responses:
  utter_greet:
    - text: "您好！请说说您遇到的问题。"
  utter_media:
    - text: "照片收到了，会附在您反映的问题里。"
"""
TINY_NLU = """version: "3.1"
nlu:
  - intent: greet
    examples: |
      - 你好
  - intent: share_media
    examples: |
      - 图片
  - intent: start_campaign
    examples: |
      - 专题
"""
TINY_RULES = """version: "3.1"
rules:
  - rule: greet
    steps: [{intent: greet}, {action: utter_greet}]
  - rule: media
    steps: [{intent: share_media}, {action: utter_media}]
  - rule: campaign tag is silent
    steps: [{intent: start_campaign}, {action: action_listen}]
"""


@pytest.fixture(scope="module")
def tiny_rasa(tmp_path_factory):
    """`rasa run` with the WeChat channel from credentials.yml, on a tiny keyword model (~35 s)."""
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    root = tmp_path_factory.mktemp("tiny-rasa")
    (root / "data").mkdir()
    for name, text in {"config.yml": TINY_CONFIG, "domain.yml": TINY_DOMAIN, "data/nlu.yml": TINY_NLU,
                       "data/rules.yml": TINY_RULES,
                       "credentials.yml": "bot.channels.wechat.WeChatInput:\n"}.items():
        (root / name).write_text(text, encoding="utf-8")
    rasa = shutil.which("rasa") or str(Path(sys.executable).with_name("rasa"))
    repo = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, **E2E_ENV, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "RASA_TELEMETRY_ENABLED": "false", "SHANGLIANG_VAR": str(root / "var"),
           "DATABASE_URL": f"sqlite:///{root / 'channels.db'}", "WECHAT_APP_SECRET": "",
           "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    subprocess.run([rasa, "train", "--fixed-model-name", "tiny", "--out", "models"], cwd=root, env=env,
                   check=True, capture_output=True, timeout=300)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(root / "rasa.log", "w")
    proc = subprocess.Popen([rasa, "run", "-m", "models/tiny.tar.gz", "--credentials", "credentials.yml",
                             "--port", str(port), "--enable-api"], cwd=root, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 240
        while True:
            try:
                with urllib.request.urlopen(base + "/status", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError((root / "rasa.log").read_text()[-3000:]) from None
                time.sleep(1)
        yield base, root
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.mark.e2e
@pytest.mark.slow
async def test_real_rasa_safe_mode_turns_retries_and_campaign(tiny_rasa):
    base, root = tiny_rasa
    client = WeChatClient(f"{base}/webhooks/wechat/webhook", aes=True)
    status, reply, elapsed = await client.send(wechat_xml("text", {"Content": "你好"}, msg_id=11, sender="oE2E"))
    assert status == 200 and reply["Content"] == "您好！请说说您遇到的问题。" and elapsed < 4.0

    xml = wechat_xml("text", {"Content": "你好"}, msg_id=12, sender="oRetry")
    results = await asyncio.gather(*(client.send(xml) for _ in range(3)))
    assert [r[1]["Content"] for r in results] == ["您好！请说说您遇到的问题。"] * 3
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/conversations/oRetry/tracker") as resp:
            tracker = await resp.json()
    assert len([e for e in tracker["events"] if e["event"] == "user"]) == 1  # one dialogue turn

    _, reply, _ = await client.send(wechat_xml("image", {"PicUrl": "http://x/p.jpg", "MediaId": "m9"}, msg_id=13))
    assert reply["Content"] == "照片收到了，会附在您反映的问题里。"

    engine = create_engine(f"sqlite:///{root / 'channels.db'}")
    campaigns.create_campaign(engine, title="加装电梯", question="您小区加装电梯难在哪里？", scene="lift")
    fields = {"Event": "subscribe", "EventKey": "qrscene_lift", "Ticket": "t"}
    _, reply, _ = await client.send(wechat_xml("event", fields, sender="oCamp"))
    assert "加装电梯" in reply["Content"] and "难在哪里" in reply["Content"]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/conversations/oCamp/tracker") as resp:
            tracker = await resp.json()
    assert tracker["slots"]["campaign"] == "lift"
    user = [e for e in tracker["events"] if e["event"] == "user"][-1]
    assert user["metadata"]["campaign"] == "lift"

    status, _ = await client.post_raw(HOSTILE["billion-laughs"], {"signature": "x", "timestamp": "1", "nonce": "n"})
    assert status == 403
    log = (root / "rasa.log").read_text()
    assert E2E_ENV["WECHAT_TOKEN"] not in log and E2E_ENV["WECHAT_AES_KEY"] not in log


def test_msgstore_purges_old_records(engine):
    store = MessageStore(engine)
    store.claim("wechat", "old", "oU")
    assert store.purge(timedelta(days=3)) == 0
    assert store.purge(timedelta(seconds=-1)) == 1 and store.get("wechat", "old") is None


async def test_reply_text_cannot_break_out_of_cdata(served):
    tricky = "好的]]></Content><MsgType><![CDATA[news]]></MsgType><Content><![CDATA[x"
    agent = FakeAgent(reply=tricky)
    _, client = await served(agent)
    _, reply, _ = await client.send(wechat_xml("text", {"Content": "hi"}, msg_id=8001))
    assert reply["MsgType"] == "text" and reply["Content"] == tricky
