/* Suggest help-centre articles while a customer describes a new request. */
(function () {
  "use strict";
  var box = document.getElementById("description");
  var aside = document.getElementById("suggestions");
  if (!box || !aside) { return; }
  var list = aside.querySelector("ul");
  var timer = null, last = "";
  function show(articles) {
    list.textContent = "";
    articles.forEach(function (a) {
      var li = document.createElement("li"), link = document.createElement("a");
      link.href = a.url; link.target = "_blank"; link.rel = "noopener"; link.textContent = a.title;
      li.appendChild(link); list.appendChild(li);
    });
    aside.hidden = articles.length === 0;
  }
  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var text = box.value.trim();
      if (text.length < 3 || text === last) { return; }
      last = text;
      fetch(box.getAttribute("data-suggest-url") + "?q=" + encodeURIComponent(text.slice(-500)), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : {articles: []}; })
        .then(function (data) { show(data.articles || []); })
        .catch(function () { show([]); });
    }, 300);
  });
})();
