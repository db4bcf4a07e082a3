// Swagger UI's own words in Chinese, for /docs in Chinese. Swagger UI (React) draws and
// redraws its labels at any time: a MutationObserver puts each fixed label it knows into
// Chinese as it appears; what it does not know (the API's own words come translated in
// /openapi.json?lang=zh) is left alone. No network, no globals but the observer.
(function () {
  "use strict";

  // A text node whose whole text (spaces aside) is one of these.
  var WORDS = {
    "Try it out": "试用",
    "Cancel": "取消",
    "Reset": "重置",
    "Execute": "执行",
    "Clear": "清除",
    "Parameters": "参数",
    "No parameters": "无参数",
    "Name": "名称",
    "Description": "说明",
    "Responses": "响应",
    "Response": "响应",
    "Code": "状态码",
    "Links": "链接",
    "No links": "无链接",
    "Request body": "请求体",
    "Media type": "媒体类型",
    "Example Value": "示例值",
    "Edit Value": "编辑值",
    "Schema": "结构",
    "Model": "模型",
    "Schemas": "数据结构",
    "Curl": "curl 命令",
    "Request URL": "请求地址",
    "Request duration": "请求耗时",
    "Server response": "服务器响应",
    "Response body": "响应体",
    "Response headers": "响应头",
    "Details": "详情",
    "Undocumented": "未记载",
    "Download": "下载",
    "Download file": "下载文件",
    "Authorize": "授权",
    "Authorized": "已授权",
    "Available authorizations": "可用的授权方式",
    "Logout": "退出",
    "Close": "关闭",
    "Value:": "值：",
    "Username:": "用户名：",
    "Password:": "密码：",
    "Send empty value": "发送空值",
    "Parameter content type": "参数内容类型",
    "Response content type": "响应内容类型",
    "Default value": "默认值",
    "Available values": "可选值",
    "Example Description": "示例说明",
    "Examples": "示例",
    "Servers": "服务器",
    "Callbacks": "回调",
    "No callbacks": "无回调",
    "Extensions": "扩展",
    "Field": "字段",
    "Value": "值",
    "Errors": "错误",
    "Hide": "隐藏",
    "Show": "显示",
    "Edit": "编辑",
    "Items": "元素",
    "Enum:": "枚举：",
    "Deprecated:": "已弃用：",
    "Headers:": "响应头：",
    "Please correct the following validation errors and try again.": "请先改正以下错误再试。",
    "Failed to load API definition.": "无法载入接口定义。",
    "No operations defined in spec!": "文档中没有接口。",
    "Loading...": "载入中…",
    "Terms of service": "服务条款",
    "Select a definition": "选择文档",
    "Filter by tag": "按标签筛选",
  };
  // Words that are only labels inside an element of one class: where a parameter is sent,
  // what the response's media type sets.
  var SCOPED = {
    "parameter__in": { query: "查询参数", path: "路径参数", header: "请求头", cookie: "Cookie" },
    "response-control-media-type__accept-message": { "Controls": "决定", "header.": "请求头。" },
  };
  // Placeholders and button titles.
  var ATTRIBUTES = {
    "Filter by tag": "按标签筛选",
    "Filter by tag or path": "按标签或路径筛选",
    "Copy to clipboard": "复制到剪贴板",
    "Expand operation": "展开接口",
    "Collapse operation": "收起接口",
    "Expand all": "全部展开",
    "Collapse all": "全部收起",
  };
  // Words Swagger UI's stylesheet writes itself (CSS `content:`).
  var STYLE =
    '.swagger-ui .parameter__name.required:after{content:"必填"}' +
    '.swagger-ui .loading-container .loading:after{content:"载入中"}';

  function translateText(node) {
    var text = node.nodeValue;
    var word = text.trim();
    if (!word) return;
    var parent = node.parentNode;
    var chinese = WORDS[word];
    if (chinese === undefined && parent && parent.classList) {
      Object.keys(SCOPED).forEach(function (name) {
        if (chinese === undefined && parent.classList.contains(name)) chinese = SCOPED[name][word];
      });
    }
    if (chinese !== undefined && chinese !== word) {
      node.nodeValue = text.replace(word, chinese);
    }
  }

  function translateAttributes(element) {
    ["placeholder", "title", "aria-label"].forEach(function (name) {
      var value = element.getAttribute(name);
      if (value && ATTRIBUTES[value.trim()]) {
        element.setAttribute(name, ATTRIBUTES[value.trim()]);
      }
    });
  }

  function translate(root) {
    if (root.nodeType === Node.TEXT_NODE) {
      translateText(root);
      return;
    }
    if (root.nodeType !== Node.ELEMENT_NODE) return;
    translateAttributes(root);
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    for (var node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.nodeType === Node.TEXT_NODE) translateText(node);
      else translateAttributes(node);
    }
  }

  var observer = new MutationObserver(function (mutations) {
    mutations.forEach(function (mutation) {
      if (mutation.type === "characterData") translateText(mutation.target);
      else if (mutation.type === "attributes") translateAttributes(mutation.target);
      else mutation.addedNodes.forEach(translate);
    });
  });

  function start() {
    var style = document.createElement("style");
    style.textContent = STYLE;
    document.head.appendChild(style);
    translate(document.body);
    observer.observe(document.body, {
      childList: true,
      subtree: true,
      characterData: true,
      attributes: true,
      attributeFilter: ["placeholder", "title", "aria-label"],
    });
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
