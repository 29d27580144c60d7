// The Jupyter widget's glue: the playground (app.js, earlier in the same module) in a shadow
// root, talking to the kernel's Session over anywidget's custom messages. widget.py builds the
// module: app.js, then LAYERPROP_MARKUP (the body of index.html) and LAYERPROP_CSS
// (style.css), then this file. It is not loaded by the standalone page.

// One view's transport: model.send to the kernel, model.on("msg:custom") for the replies, which
// go to every view of the widget (a reply carries the id of the view that asked; see app.js).
function widgetTransport(model) {
  const view = Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
  let listener = null;
  return {
    view,
    connect(h) {
      listener = (msg) => h.message(msg);
      model.on("msg:custom", listener);
      h.open();
    },
    send(msg) { model.send(msg); return true; },
    // the kernel's Session is configured when the widget is made: ask for its state
    start() { return [{ type: "hello" }, { type: "state" }]; },
    disconnect() { if (listener) model.off("msg:custom", listener); listener = null; },
  };
}

function render({ model, el }) {
  // a shadow root keeps the page's ids and styles apart from the notebook and other views
  const root = el.shadowRoot || el.attachShadow({ mode: "open" });
  const style = document.createElement("style");
  style.textContent = LAYERPROP_CSS;
  const box = document.createElement("div");
  box.className = "lp-widget";
  box.innerHTML = LAYERPROP_MARKUP;
  root.replaceChildren(style, box);
  // keys typed into the playground's fields stay there (not notebook command-mode shortcuts)
  const keep = (e) => {
    const t = e.composedPath()[0];
    if (t && t.matches && t.matches("input, select, textarea")) e.stopPropagation();
  };
  root.addEventListener("keydown", keep);
  const app = layerpropPlayground(root, widgetTransport(model));
  el.layerprop = app.stats; // for tests
  return () => { root.removeEventListener("keydown", keep); app.destroy(); };
}

export default { render };
