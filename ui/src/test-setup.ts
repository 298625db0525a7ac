// jsdom lacks matchMedia, which uPlot reads when it loads (for the device pixel ratio). The
// graphs themselves are replaced in the tests (no canvas in jsdom); this only lets it load.
if (typeof window.matchMedia !== "function") {
  window.matchMedia = (query: string) =>
    ({
      matches: false,
      media: query,
      onchange: null,
      addListener: () => {},
      removeListener: () => {},
      addEventListener: () => {},
      removeEventListener: () => {},
      dispatchEvent: () => false,
    }) as MediaQueryList;
}
