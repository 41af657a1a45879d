// Annotation bridge: POSTs annotations from the browser to the clinagent server extension.
//
// The kernel sends {type: "post", id, path, body}; this module (once per model, in `initialize`, so a
// bridge shown in several views posts once) sends the JSON body to `<baseUrl><path>` with the Jupyter
// `_xsrf` cookie as X-XSRFToken, the page's token when it has one, and credentials "same-origin", then
// answers {type: "result", id, ok, status, body}. Only paths under clinagent/api/ are accepted.

const API_PREFIX = "clinagent/api/";

export function xsrfFromCookie(cookie) {
  for (const part of (cookie || "").split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "_xsrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

export function pageConfig(doc) {
  const el = doc && doc.getElementById ? doc.getElementById("jupyter-config-data") : null;
  if (!el) return {};
  try {
    return JSON.parse(el.textContent || "{}");
  } catch (err) {
    return {};
  }
}

export function baseUrl(doc) {
  const config = pageConfig(doc);
  let base = config.baseUrl || (doc && doc.body && doc.body.dataset && doc.body.dataset.baseUrl) || "/";
  if (!base.endsWith("/")) base += "/";
  return base;
}

export function buildRequest({ base, path, body, xsrf, token }) {
  if (typeof path !== "string" || !path.startsWith(API_PREFIX) || path.includes("..")) {
    throw new Error(`refusing to post to '${path}': only ${API_PREFIX} paths are allowed`);
  }
  const headers = { "Content-Type": "application/json" };
  if (xsrf) headers["X-XSRFToken"] = xsrf;
  if (token) headers["Authorization"] = `token ${token}`;
  return {
    url: `${base}${path}`,
    init: { method: "POST", headers, credentials: "same-origin", body: JSON.stringify(body) },
  };
}

export async function postAnnotation({ path, body, doc, fetchImpl }) {
  const request = buildRequest({
    base: baseUrl(doc),
    path,
    body,
    xsrf: xsrfFromCookie(doc ? doc.cookie : ""),
    token: pageConfig(doc).token || "",
  });
  let response;
  try {
    response = await fetchImpl(request.url, request.init);
  } catch (err) {
    return { ok: false, status: 0, body: { message: `network error: ${err}` } };
  }
  let answer = {};
  try {
    answer = await response.json();
  } catch (err) {
    answer = { message: `HTTP ${response.status}` };
  }
  return { ok: response.ok, status: response.status, body: answer };
}

function show(el, text, ok) {
  el.textContent = text;
  el.className = `clinagent-bridge ${ok ? "clinagent-ok" : "clinagent-error"}`;
}

export default {
  initialize({ model }) {
    const onMessage = async (msg) => {
      if (!msg || msg.type !== "post") return;
      let result;
      try {
        result = await postAnnotation({ path: msg.path, body: msg.body, doc: document, fetchImpl: fetch });
      } catch (err) {
        result = { ok: false, status: 0, body: { message: String(err) } };
      }
      model.send({ type: "result", id: msg.id, ...result });
    };
    model.on("msg:custom", onMessage);
    return () => model.off("msg:custom", onMessage);
  },
  render({ model, el }) {
    const line = document.createElement("div");
    const update = () => show(line, model.get("message"), model.get("ok"));
    update();
    model.on("change:message", update);
    model.on("change:ok", update);
    el.appendChild(line);
    model.set("frontend", true);
    model.save_changes();
    return () => {
      model.off("change:message", update);
      model.off("change:ok", update);
    };
  },
};
