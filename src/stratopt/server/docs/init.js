// Starts Swagger UI on the OpenAPI document this gateway serves. A separate file, not an inline
// script, so the page runs under a Content-Security-Policy without 'unsafe-inline' scripts.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // "Authorize" keeps the bearer token or API key for "Try it out" in this tab only.
  persistAuthorization: false,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
