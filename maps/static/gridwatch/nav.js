// On a phone the bar's entries are a strip that scrolls sideways: show the current page's
// entry in it, whichever page that is (once laid out with its fonts: widths change with them).
(function () {
  "use strict";
  function show() {
    var nav = document.querySelector(".gw-bar nav");
    var on = nav && nav.querySelector("a.on");
    if (!on || nav.scrollWidth <= nav.clientWidth) { return; }
    var left = on.getBoundingClientRect().left - nav.getBoundingClientRect().left;
    nav.scrollLeft += left - (nav.clientWidth - on.offsetWidth) / 2;
  }
  if (document.readyState === "complete") { show(); } else { window.addEventListener("load", show); }
})();
