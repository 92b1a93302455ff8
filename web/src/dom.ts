/**
 * The only way this app builds DOM: elements from tag names, text as text nodes. No innerHTML anywhere, so a user
 * string can never become markup.
 */
export type Child = Node | string | number | null | undefined | false;

export interface Props {
  class?: string;
  /** Sets textContent. */
  text?: string;
  /** Attributes (aria-*, role, type, ...). `false`/`undefined` leave the attribute out; `true` sets it empty. */
  attrs?: Record<string, string | number | boolean | undefined>;
  /** Event listeners. */
  on?: { [K in keyof HTMLElementEventMap]?: (event: HTMLElementEventMap[K]) => void };
  /** data-* values. */
  data?: Record<string, string>;
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.text !== undefined) el.textContent = props.text;
  for (const [k, v] of Object.entries(props.attrs ?? {})) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const [k, v] of Object.entries(props.data ?? {})) el.dataset[k] = v;
  for (const [type, fn] of Object.entries(props.on ?? {})) el.addEventListener(type, fn as EventListener);
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces all children (text stays text). */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, ...children);
}

/**
 * Sets an element's text by changing its text node in place: a list that is a live region announcing additions (the
 * messages) does not take a changed name for a new message, as it does a replaced node.
 */
export function setText(el: Element, text: string): void {
  const only = el.firstChild;
  if (only && only.nodeType === Node.TEXT_NODE && !only.nextSibling) {
    if (only.nodeValue !== text) only.nodeValue = text;
  } else el.textContent = text;
}

/** A visually hidden text for screen readers. */
export const srOnly = (text: string) => h("span", { class: "vh", text });

let ids = 0;
export const uid = (prefix: string) => `${prefix}-${++ids}`;
