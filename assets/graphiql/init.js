// needtoknow's GraphiQL: every asset comes from this service (no CDN), and the page's
// Content-Security-Policy allows nothing else. Paste an agent's API token into the
// Headers tab; it stays in this browser's local storage.
(function () {
  var fetcher = GraphiQL.createFetcher({ url: '/graphql' });
  var placeholder = JSON.stringify({ Authorization: 'Bearer <paste an API token>' }, null, 2);
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: 'headers',
      defaultHeaders: placeholder,
      shouldPersistHeaders: true,
      defaultQuery: '# Who am I, and which tickets may I see?\nquery Me {\n  me { handle role queues }\n}\n',
    })
  );
})();
