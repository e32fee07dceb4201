/** The one-line notice at the bottom of the screen (a polite live region), gone after 8 s or when tapped. */
import { byId } from './dom.js';

let timer: ReturnType<typeof setTimeout> | undefined;

export function toast(message: string): void {
  const element = byId('toast');
  element.textContent = message;
  element.hidden = false;
  element.onclick = () => (element.hidden = true);
  clearTimeout(timer);
  timer = setTimeout(() => (element.hidden = true), 8000);
}
