# Notification channels, the uptime check and the alert policies. Every policy notifies the email
# channel and, when set, the webhook; each one's documentation says what to check first.

resource "google_monitoring_notification_channel" "email" {
  display_name = "${var.name} on-call email"
  type         = "email"
  labels = {
    email_address = var.notification_email
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_notification_channel" "webhook" {
  # The URL itself is sensitive, whether it is set is not.
  count = nonsensitive(var.notification_webhook_url != "") ? 1 : 0

  display_name = "${var.name} on-call webhook"
  type         = "webhook_tokenauth"
  labels = {
    url = var.notification_webhook_url
  }

  depends_on = [google_project_service.enabled]
}

locals {
  notification_channels = concat(
    [google_monitoring_notification_channel.email.name],
    google_monitoring_notification_channel.webhook[*].name,
  )

  request_duration_filter = "metric.type=\"workload.googleapis.com/http.server.request.duration\" AND ${local.frontend_metric_resource}"

  frontend_request_count_filter = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.services.frontend}\""

  runbook_footer = <<-EOT

    Service: ${local.services.frontend} (public) calls ${local.services.backend} (private) in ${var.region}.
    Dashboard: "${var.name} service" in Cloud Monitoring. Logs: Logs Explorer, resource "Cloud Run Revision".
  EOT
}

# HTTPS GET /healthz on the frontend every 60 s from several regions.
resource "google_monitoring_uptime_check_config" "frontend" {
  display_name = "${local.services.frontend} /healthz"
  period       = "60s"
  timeout      = "10s"

  http_check {
    path           = "/healthz"
    port           = 443
    use_ssl        = true
    validate_ssl   = true
    request_method = "GET"

    accepted_response_status_codes {
      status_value = 200
    }
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = trimprefix(google_cloud_run_v2_service.frontend.uri, "https://")
    }
  }
}

resource "google_monitoring_alert_policy" "uptime" {
  display_name          = "${local.services.frontend}: uptime check failing"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.notification_channels

  conditions {
    display_name = "/healthz fails from more than one checker location"
    condition_threshold {
      filter     = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND metric.label.check_id=\"${google_monitoring_uptime_check_config.frontend.uptime_check_id}\" AND resource.type=\"uptime_url\""
      comparison = "COMPARISON_GT"
      # More than one location failing rules out a single checker's network trouble.
      threshold_value = 1
      duration        = "60s"

      aggregations {
        alignment_period     = "1200s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.*"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${local.services.frontend} is down (uptime check)"
    content   = <<-EOT
      Google's uptime checkers cannot get 200 from https://<frontend>/healthz.

      Check first:
      1. Cloud Run > ${local.services.frontend} > Revisions: is the latest revision Ready? A failed
         startup probe on /healthz after a deploy means the new image does not start: roll back with
         `gcloud run services update-traffic ${local.services.frontend} --to-revisions=PREVIOUS=100 --region=${var.region}`.
      2. Logs of the frontend around the first failure (severity>=WARNING), and the Cloud Build history
         for a deploy at that time.
      3. Whether allUsers still holds roles/run.invoker on the frontend (a 403 everywhere).
      ${local.runbook_footer}
    EOT
  }
}

resource "google_monitoring_alert_policy" "latency_p95" {
  display_name          = "${local.services.frontend}: p95 latency above ${var.latency_p95_threshold_ms} ms"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.notification_channels

  conditions {
    display_name = "p95 request duration > ${var.latency_p95_threshold_ms} ms for 5 min"
    condition_threshold {
      # The service's own request histogram; health checks excluded so they cannot mask slow pages.
      filter          = "${local.request_duration_filter} AND metric.labels.http_route!=\"/healthz\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.latency_p95_threshold_ms / 1000 # the metric's unit is s
      duration        = "300s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
        group_by_fields      = ["resource.labels.namespace"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${local.services.frontend} is slow (p95 > ${var.latency_p95_threshold_ms} ms)"
    content   = <<-EOT
      The 95th percentile of the frontend's request duration has stayed above ${var.latency_p95_threshold_ms} ms for 5 minutes.

      Check first:
      1. Dashboard "${var.name} service": latency by percentile and instance count. Instances at
         max (${var.frontend_max_instances}) means saturation: raise frontend_max_instances.
      2. Cloud Trace for slow traces of the frontend: is the time spent in the call to ${local.services.backend}?
         Then look at the backend's instances and logs.
      3. Log-based latency metric by route: one slow route or all of them?
      ${local.runbook_footer}
    EOT
  }
}

resource "google_monitoring_alert_policy" "error_ratio" {
  display_name          = "${local.services.frontend}: 5xx ratio above ${var.error_ratio_threshold * 100} %"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "5xx responses / all responses > ${var.error_ratio_threshold} for 5 min"
    condition_threshold {
      # Cloud Run's own request count, by response class: it counts every response the frontend
      # gave, including those of a crashed or overloaded instance that could not export its metrics.
      filter             = "${local.frontend_request_count_filter} AND metric.labels.response_code_class=\"5xx\""
      denominator_filter = local.frontend_request_count_filter
      comparison         = "COMPARISON_GT"
      threshold_value    = var.error_ratio_threshold
      duration           = "300s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }

      denominator_aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${local.services.frontend} is failing requests (5xx > ${var.error_ratio_threshold * 100} %)"
    content   = <<-EOT
      More than ${var.error_ratio_threshold * 100} % of the frontend's responses have been 5xx for 5 minutes.

      Check first:
      1. Error Reporting: a new error group since the last deploy? Roll back to the previous revision.
      2. Logs: `severity>=ERROR` on both services, grouped by jsonPayload.errorType.
         downstream_failure = the backend is failing or refusing the frontend (403: check the
         backend's roles/run.invoker binding for the frontend's service account).
      3. Is it payments only? The payment-failure log metric on the dashboard (simulated rate:
         ${var.payment_failure_rate}).
      ${local.runbook_footer}
    EOT
  }
}

resource "google_monitoring_alert_policy" "error_logs" {
  display_name          = "${var.name}: ERROR log entries spiking"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "more than ${var.error_log_threshold} ERROR entries per minute for 5 min"
    condition_threshold {
      filter     = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.errors.name}\" AND resource.type=\"cloud_run_revision\""
      comparison = "COMPARISON_GT"
      # ALIGN_RATE is per second; a rate means the same whatever the alignment period.
      threshold_value = var.error_log_threshold / 60
      duration        = "300s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name}: more than ${var.error_log_threshold} ERROR log entries per minute"
    content   = <<-EOT
      One of the services has written more than ${var.error_log_threshold} ERROR entries per minute for 5 minutes.

      Check first:
      1. The alert's service_name label tells which service. Logs Explorer on it with `severity>=ERROR`;
         jsonPayload.errorType says panic, handler_error or downstream_failure.
      2. Panics: Error Reporting has the location (context.reportLocation) and first occurrence.
      3. Compare with the 5xx ratio alert: errors without 5xx are handled failures (e.g. payments).
      ${local.runbook_footer}
    EOT
  }
}

# Only when traffic is expected: a service that may sit idle would page every quiet night.
resource "google_monitoring_alert_policy" "no_requests" {
  count = var.expected_min_requests ? 1 : 0

  display_name          = "${local.services.frontend}: no requests"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.notification_channels

  conditions {
    display_name = "no request log lines except /healthz for 10 min"
    condition_absent {
      # The log-based metric, not the service's own cumulative histogram: cumulative series keep
      # reporting unchanged values while instances are up, so they never go absent. The uptime
      # checker's /healthz requests are excluded, or they would always count as traffic.
      filter   = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.request_latency.name}\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.services.frontend}\" AND metric.labels.route!=\"/healthz\""
      duration = "600s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${local.services.frontend} receives no traffic"
    content   = <<-EOT
      The frontend has logged no request (other than health checks) for 10 minutes, although traffic is expected.

      Check first:
      1. The uptime alert: if it fires too, the service is down, start there.
      2. DNS, load balancer or client changes upstream: the service may be healthy but unreachable for users.
      3. Logs: are request lines still written (a logging or LOG_FORMAT change would also stop this metric)?
      ${local.runbook_footer}
    EOT
  }
}
