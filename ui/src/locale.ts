// WebKitGTK reports the POSIX locale as navigator.language "C" (LANG unset or C, as on servers,
// CI, and some minimal desktops). That is not a BCP 47 tag: `new Intl.NumberFormat("C")` throws,
// and uPlot does exactly that when it loads, which left a blank window. Imported first by
// main.ts, before anything that formats numbers.
function valid(tag: string): boolean {
  try {
    new Intl.NumberFormat(tag);
    return true;
  } catch {
    return false;
  }
}

export function usableLanguage(tag: string | undefined): string {
  return tag && valid(tag) ? tag : "en-US";
}

const lang = usableLanguage(navigator.language);
if (lang !== navigator.language) {
  Object.defineProperty(navigator, "language", { value: lang, configurable: true });
  Object.defineProperty(navigator, "languages", { value: [lang], configurable: true });
}
