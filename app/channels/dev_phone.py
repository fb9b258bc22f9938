"""The phone simulator at /dev/phone: plays Twilio's part for demos and tests without an account.

The page sends the same webhooks Twilio would, signed with the account's auth token, to the real
voice endpoints -- so they pass through the same signature check -- shows each ``<Say>`` as text and
offers a keypad for ``<Gather>``. It follows what the desk asks of the network (redirects on accept,
outbound callbacks) through the recording telephony twin. Only served while dev tools are enabled.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, render_template, request
from flask_babel import get_locale
from twilio.request_validator import RequestValidator

from app.channels.telephony import RecordingTelephony

bp = Blueprint("dev_phone", __name__, url_prefix="/dev/phone")

TEXT = {
    "en": {"title": "Phone simulator", "from": "Caller number", "to": "Desk number", "call": "Call",
           "hangup": "Hang up", "speak": "Say (speech)", "send": "Send", "idle": "Not in a call",
           "ringing": "Calling...", "in_call": "In call", "ended": "Call ended", "recording": "Recording a message",
           "stop": "Stop recording", "music": "hold music", "connected": "Connected to", "incoming":
           "The desk is calling you back", "answer": "Answer", "note": "Plays Twilio's part: every request is "
           "signed and checked like Twilio's. Keys pressed go to the current menu.", "error": "Error",
           "twin_off": "The desk is using real Twilio: redirects and callbacks are not shown here."},
    "zh": {"title": "电话模拟器", "from": "来电号码", "to": "客服号码", "call": "拨打", "hangup": "挂断",
           "speak": "说话（语音）", "send": "发送", "idle": "未通话", "ringing": "正在呼叫……", "in_call": "通话中",
           "ended": "通话已结束", "recording": "正在录制留言", "stop": "停止录音", "music": "等待音乐",
           "connected": "已接通", "incoming": "客服中心正在回拨您的电话", "answer": "接听",
           "note": "模拟 Twilio：每个请求都像 Twilio 的请求一样签名并校验。按键发送到当前菜单。", "error": "错误",
           "twin_off": "系统正在使用真实的 Twilio：此处不显示转接和回拨。"},
}


@bp.before_request
def _dev_tools_only():
    if not current_app.extensions["desk.settings"].dev_tools_enabled:
        abort(404)


def _base() -> str:
    return current_app.extensions["desk.settings"].public_base_url.rstrip("/")


@bp.get("")
def page():
    language = "zh" if str(get_locale()) == "zh" else "en"
    return render_template("dev_phone/phone.html", text=TEXT[language], base=_base(),
                           twin=isinstance(current_app.extensions["desk.telephony"], RecordingTelephony))


@bp.post("/sign")
def sign():
    """The signature Twilio would send for a POST of ``params`` to ``url`` (voice webhooks only)."""
    data = request.get_json(silent=True) or {}
    url, params = data.get("url"), data.get("params")
    if not isinstance(url, str) or not url.startswith(_base() + "/voice/") or len(url) > 500:
        return jsonify(error="bad_request", message="url must be a voice webhook on this desk"), 400
    if not isinstance(params, dict) or len(params) > 30 or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) <= 2000 for k, v in params.items()):
        return jsonify(error="bad_request", message="params must be a small map of strings"), 400
    token = current_app.extensions["desk.settings"].twilio_auth_token
    return jsonify(signature=RequestValidator(token).compute_signature(url, params))


@bp.get("/network")
def network():
    """What the desk asked the network since ``since``: redirects and hang-ups of ``call_sid``, and
    calls placed to ``number`` (the simulator answers those as the customer)."""
    telephony = current_app.extensions["desk.telephony"]
    if not isinstance(telephony, RecordingTelephony):
        return jsonify(requests=[], next=0)
    since = request.args.get("since", "0")
    since_index = int(since) if since.isdigit() else 0
    call_sid, number = request.args.get("call_sid", ""), request.args.get("number", "")
    found = []
    seen, next_index = telephony.requests_since(since_index)
    for index, item in seen:
        if item.call_sid == call_sid or (item.action == "place" and number and item.data.get("to") == number):
            found.append({"index": index, "action": item.action, "call_sid": item.call_sid, **item.data})
    return jsonify(requests=found, next=next_index)
