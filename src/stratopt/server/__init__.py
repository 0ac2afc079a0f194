"""Assembly: settings, interceptor wiring, bootstrap, warm-up, the Envoy gateway, logs."""
