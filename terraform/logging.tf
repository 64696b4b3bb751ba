# Log-based metrics over the services' Cloud Logging entries. They count what the service logs,
# independently of its own OpenTelemetry metrics, so they keep working if telemetry export breaks.

# Every ERROR (or worse) entry of either service. The label tells application errors
# (handler_error, panic, downstream_failure) from 5xx request lines (empty error_type).
resource "google_logging_metric" "errors" {
  name        = "${var.name}-errors"
  description = "ERROR and worse log entries of ${local.services.frontend} and ${local.services.backend}, by jsonPayload.errorType."
  filter      = "${local.run_logs_filter} AND severity>=ERROR"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name} error log entries"

    labels {
      key         = "error_type"
      value_type  = "STRING"
      description = "jsonPayload.errorType: handler_error, panic, downstream_failure; empty for 5xx request lines."
    }
  }

  label_extractors = {
    error_type = "EXTRACT(jsonPayload.errorType)"
  }

  depends_on = [google_project_service.enabled]
}

# Failed calls to the payment dependency: its ERROR lines carry jsonPayload.dependency="payments".
resource "google_logging_metric" "payment_failures" {
  name        = "${var.name}-payment-failures"
  description = "Payment failures logged by ${local.services.frontend} and ${local.services.backend}."
  filter      = "${local.run_logs_filter} AND severity>=ERROR AND jsonPayload.dependency=\"payments\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name} payment failures"
  }

  depends_on = [google_project_service.enabled]
}

# Request latency from the request log lines (jsonPayload.latencyMs), by route template.
# Only request lines carry latencyMs; entries without it fail extraction and are skipped.
resource "google_logging_metric" "request_latency" {
  name        = "${var.name}-request-latency"
  description = "Request latency in ms from the request log lines of ${local.services.frontend} and ${local.services.backend}."
  filter      = "${local.run_logs_filter} AND jsonPayload.latencyMs>=0"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "${var.name} request latency (logs)"

    labels {
      key         = "route"
      value_type  = "STRING"
      description = "Route template, e.g. /api/books/{id}."
    }
  }

  value_extractor = "EXTRACT(jsonPayload.latencyMs)"
  label_extractors = {
    route = "EXTRACT(jsonPayload.route)"
  }

  # 1 ms to ~30 s in 26 buckets growing by 1.5x: fine at the low end where the service lives.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 26
      growth_factor      = 1.5
      scale              = 1
    }
  }

  depends_on = [google_project_service.enabled]
}
