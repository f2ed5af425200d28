"""Rasa input channels for WeChat (公众号) and WeCom (企业微信), and campaigns (专题商量).

credentials.yml names the channels by class path: `bot.channels.wechat.WeChatInput` and
`bot.channels.wecom.WeComInput` (see docs/WECHAT.md). Modules are not imported here so that
`import bot.channels` stays cheap for the CLI.
"""
