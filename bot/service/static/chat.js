// Web chat: posts {sender, message} to /chat/send (proxied to Rasa) and shows the replies.
(function () {
  "use strict";
  var log = document.getElementById("log");
  var form = document.getElementById("form");
  var input = document.getElementById("input");
  var sendButton = document.getElementById("send");

  function senderId() {
    var key = "shangliang.sender";
    var id = null;
    try { id = window.localStorage.getItem(key); } catch (e) { /* private mode */ }
    if (!id || !/^[A-Za-z0-9_-]{8,64}$/.test(id)) {
      var bytes = new Uint8Array(16);
      (window.crypto || window.msCrypto).getRandomValues(bytes);
      id = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
      try { window.localStorage.setItem(key, id); } catch (e) { /* keep it for this page only */ }
    }
    return id;
  }
  var sender = senderId();

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function add(role, text) {
    var row = document.createElement("div");
    row.className = "msg " + role;
    var bubble = document.createElement("div");
    bubble.className = "bubble";
    if (text) { bubble.textContent = text; }
    row.appendChild(bubble);
    log.appendChild(row);
    scrollDown();
    return bubble;
  }

  function showReply(reply) {
    var bubble = add("bot", reply.text || "");
    if (reply.image && /^https?:\/\//.test(reply.image)) {
      var img = document.createElement("img");
      img.src = reply.image;
      img.alt = "图片";
      img.onload = scrollDown;
      bubble.appendChild(img);
    }
    if (reply.buttons && reply.buttons.length) {
      var box = document.createElement("div");
      box.className = "buttons";
      reply.buttons.forEach(function (b) {
        var btn = document.createElement("button");
        btn.type = "button";
        btn.textContent = b.title;
        btn.addEventListener("click", function () {
          Array.prototype.forEach.call(box.querySelectorAll("button"), function (x) { x.disabled = true; });
          send(b.payload, b.title);
        });
        box.appendChild(btn);
      });
      bubble.appendChild(box);
    }
  }

  function send(message, shown) {
    add("user", shown || message);
    sendButton.disabled = true;
    var typing = add("bot typing", "正在输入…");
    fetch("/chat/send", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sender: sender, message: message })
    }).then(function (resp) {
      return resp.json().then(function (body) { return { ok: resp.ok, body: body }; });
    }).then(function (res) {
      typing.parentNode.remove();
      if (!res.ok) {
        add("error", (res.body && res.body.error && res.body.error.message) || "发送失败，请稍后再试。");
        return;
      }
      var replies = res.body.replies || [];
      if (!replies.length) { add("bot", "收到。"); }
      replies.forEach(showReply);
    }).catch(function () {
      typing.parentNode.remove();
      add("error", "网络好像断了，请检查网络后再发一次。");
    }).then(function () {
      sendButton.disabled = false;
      input.focus();
    });
  }

  // A campaign link (/chat?campaign=<scene>): show its question and tag the conversation with it.
  var scene = new URLSearchParams(window.location.search).get("campaign");
  if (scene && /^[A-Za-z0-9_-]{1,64}$/.test(scene)) {
    fetch("/chat/campaign/" + encodeURIComponent(scene)).then(function (resp) {
      return resp.json().then(function (body) { return { ok: resp.ok, body: body }; });
    }).then(function (res) {
      if (!res.ok) { add("error", res.body.error.message); return; }
      add("bot", res.body.text);
      if (res.body.open) {
        fetch("/chat/send", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ sender: sender, message: "/start_campaign" + JSON.stringify({ campaign: scene }) })
        });
      }
    }).catch(function () {});
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    input.value = "";
    input.style.height = "";
    send(text);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
    }
  });
  input.addEventListener("input", function () {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 120) + "px";
  });
})();
