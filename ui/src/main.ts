// First: a usable navigator.language before uPlot reads it.
import "./locale";
import { App } from "./app";

const root = document.getElementById("app");
if (root) {
  const app = new App(root);
  void app.start();
}
