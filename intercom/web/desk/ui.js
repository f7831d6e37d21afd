// The few DOM helpers the desk needs: find an element, show one view, say something.

export const $ = (id) => document.getElementById(id);

const VIEWS = ['unpaired', 'pairing', 'removed', 'idle', 'ringing', 'call'];

/** Show the view `name` (one of VIEWS) and hide the others. */
export function showView(name) {
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== name;
  document.body.dataset.view = name;
}

/** A message for the person holding the phone (null hides it). */
export function notify(text) {
  $('notice').textContent = text || '';
  $('notice').hidden = !text;
}

/** A list item of `parts` (text or nodes), each in a span with its class. */
export function item(parts, data = {}) {
  const li = document.createElement('li');
  for (const [name, value] of Object.entries(data)) li.dataset[name] = String(value);
  for (const [className, content] of Object.entries(parts)) {
    const span = document.createElement('span');
    span.className = className;
    span.append(content);
    li.append(span);
  }
  return li;
}
