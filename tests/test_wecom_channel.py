"""WeCom (企业微信) channel: encrypted URL verification and messages, replies through the API fake."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import xmltodict
from sqlalchemy import create_engine
from wechatpy.crypto import _get_signature
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto

from bot.channels.wecom import WeComInput

try:
    from fake_wechat_server import E2E_ENV, ChannelServer, FakeWeChat
except ImportError:  # tests/ as a package
    from tests.fake_wechat_server import E2E_ENV, ChannelServer, FakeWeChat

TOKEN = E2E_ENV["WECOM_TOKEN"]
AES_KEY = E2E_ENV["WECOM_AES_KEY"]
CORP_ID = E2E_ENV["WECOM_CORP_ID"]
AGENT_ID = E2E_ENV["WECOM_AGENT_ID"]


class FakeAgent:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.turns: list = []

    async def __call__(self, message) -> None:
        self.turns.append(message)
        await asyncio.sleep(self.delay)
        await message.output_channel.send_text_message(message.sender_id, f"收到：{message.text}")


def wecom_xml(msg_type: str, fields: dict, *, msg_id: int | None = None, user: str = "zhangsan") -> str:
    parts = [
        f"<ToUserName><![CDATA[{CORP_ID}]]></ToUserName>",
        f"<FromUserName><![CDATA[{user}]]></FromUserName>",
        f"<CreateTime>{int(time.time())}</CreateTime>",
        f"<MsgType><![CDATA[{msg_type}]]></MsgType>",
        f"<AgentID>{AGENT_ID}</AgentID>",
    ]
    parts += [f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()]
    if msg_id is not None:
        parts.append(f"<MsgId>{msg_id}</MsgId>")
    return "<xml>" + "".join(parts) + "</xml>"


@pytest.fixture()
async def fake():
    server = FakeWeChat(corp_id=CORP_ID)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture()
async def wecom(tmp_path, fake):
    engine = create_engine(f"sqlite:///{tmp_path / 'wecom.db'}", future=True)
    agent = FakeAgent()
    channel = WeComInput(token=TOKEN, corp_id=CORP_ID, aes_key=AES_KEY, secret=fake.corp_secret,
                         agent_id=AGENT_ID, api_base=fake.base_url, engine=engine)
    server = ChannelServer(channel, agent)
    url = await server.start()
    yield channel, agent, url
    await channel.drain()
    await server.stop()


def crypto() -> WeChatCrypto:
    return WeChatCrypto(TOKEN, AES_KEY, CORP_ID)


async def post(url: str, xml: str, *, tamper: bool = False) -> tuple[int, str]:
    timestamp, nonce = str(int(time.time())), "wecomnonce"
    body = crypto().encrypt_message(xml, nonce, timestamp)
    signature = xmltodict.parse(body)["xml"]["MsgSignature"]
    if tamper:
        signature = "0" * 40
    params = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, params=params, data=body) as resp:
            return resp.status, await resp.text()


async def test_url_verification_decrypts_echostr(wecom):
    _, _, url = wecom
    timestamp, nonce = str(int(time.time())), "v1"
    echostr = PrpCrypto(crypto().key).encrypt("echo-7788", CORP_ID).decode()
    good = {"msg_signature": _get_signature(TOKEN, timestamp, nonce, echostr), "timestamp": timestamp,
            "nonce": nonce, "echostr": echostr}
    async with aiohttp.ClientSession() as http:
        ok = await http.get(url, params=good)
        assert ok.status == 200 and await ok.text() == "echo-7788"
        bad = await http.get(url, params={**good, "msg_signature": "1" * 40})
        assert bad.status == 403


async def test_text_reply_goes_through_message_api(wecom, fake):
    channel, agent, url = wecom
    status, text = await post(url, wecom_xml("text", {"Content": "办公楼电梯经常停运"}, msg_id=7001))
    assert status == 200 and text == ""
    sent = await fake.wait_for("wecom_messages", 1)
    assert sent == [{"touser": "zhangsan", "msgtype": "text", "agentid": int(AGENT_ID),
                     "text": {"content": "收到：办公楼电梯经常停运"}}]
    assert agent.turns[0].input_channel == "wecom"


async def test_duplicate_msgid_is_one_turn(wecom, fake):
    channel, agent, url = wecom
    agent.delay = 0.2
    xml = wecom_xml("text", {"Content": "重复"}, msg_id=7002)
    await asyncio.gather(post(url, xml), post(url, xml), post(url, xml))
    await channel.drain()
    assert len(agent.turns) == 1 and len(fake.wecom_messages) == 1


async def test_subscribe_event_welcomes(wecom, fake):
    channel, agent, url = wecom
    await post(url, wecom_xml("event", {"Event": "subscribe"}))
    sent = await fake.wait_for("wecom_messages", 1)
    assert "欢迎" in sent[0]["text"]["content"] and agent.turns == []


async def test_enter_agent_event_is_silent(wecom, fake):
    channel, agent, url = wecom
    status, _ = await post(url, wecom_xml("event", {"Event": "enter_agent", "EventKey": ""}))
    await channel.drain()
    assert status == 200 and fake.wecom_messages == [] and agent.turns == []


async def test_bad_signature_and_hostile_xml_refused(wecom):
    channel, agent, url = wecom
    status, _ = await post(url, wecom_xml("text", {"Content": "x"}, msg_id=7003), tamper=True)
    assert status == 403
    status, _ = await post(url, '<!DOCTYPE x [<!ENTITY a "b">]><xml><Content>&a;</Content></xml>')
    assert status == 400
    timestamp, nonce = str(int(time.time())), "n"
    async with aiohttp.ClientSession() as http:
        resp = await http.post(url, params={"msg_signature": "a" * 40, "timestamp": timestamp, "nonce": nonce},
                               data="<xml>" + "<a>" * 100 + "</a>" * 100 + "</xml>")
        assert resp.status == 400
    assert agent.turns == []
