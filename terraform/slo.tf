# A Cloud Monitoring service for the frontend with an availability and a latency SLO, and an alert
# on how fast each one burns its error budget: the pattern of Google's reference deployments
# (cloud-ops-sandbox), done here for Cloud Run.

resource "google_monitoring_custom_service" "frontend" {
  service_id   = local.services.frontend
  display_name = "${local.services.frontend} (Cloud Run)"

  depends_on = [google_project_service.enabled]
}

# Availability: responses that are not 5xx, from Cloud Run's own request counter (an INT64 DELTA
# series, which a good/total ratio SLI needs; it also counts requests the container never answered).
resource "google_monitoring_slo" "availability" {
  service             = google_monitoring_custom_service.frontend.service_id
  slo_id              = "availability"
  display_name        = "${var.availability_slo_goal * 100} % of requests succeed (28 days)"
  goal                = var.availability_slo_goal
  rolling_period_days = 28

  request_based_sli {
    good_total_ratio {
      total_service_filter = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.services.frontend}\""
      bad_service_filter   = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.services.frontend}\" AND metric.labels.response_code_class=\"5xx\""
    }
  }
}

# Latency: requests (health checks excluded) faster than the threshold, from the service's histogram.
resource "google_monitoring_slo" "latency" {
  service             = google_monitoring_custom_service.frontend.service_id
  slo_id              = "latency"
  display_name        = "${var.latency_slo_goal * 100} % of requests under ${var.latency_slo_threshold_ms} ms (28 days)"
  goal                = var.latency_slo_goal
  rolling_period_days = 28

  request_based_sli {
    distribution_cut {
      distribution_filter = "${local.request_duration_filter} AND metric.labels.http_route!=\"/healthz\""
      range {
        min = 0
        max = var.latency_slo_threshold_ms / 1000 # the metric's unit is s
      }
    }
  }
}

resource "google_monitoring_alert_policy" "slo_burn_rate" {
  display_name          = "${local.services.frontend}: SLO error budget burning fast"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.notification_channels

  dynamic "conditions" {
    for_each = {
      availability = google_monitoring_slo.availability.name
      latency      = google_monitoring_slo.latency.name
    }
    content {
      display_name = "${conditions.key} SLO burn rate > ${var.slo_burn_rate_threshold}x over 1 h"
      condition_threshold {
        filter          = "select_slo_burn_rate(\"${conditions.value}\", \"3600s\")"
        comparison      = "COMPARISON_GT"
        threshold_value = var.slo_burn_rate_threshold
        duration        = "0s"

        trigger {
          count = 1
        }
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${local.services.frontend}: SLO budget burning at more than ${var.slo_burn_rate_threshold}x"
    content   = <<-EOT
      Over the last hour the frontend has spent its error budget more than ${var.slo_burn_rate_threshold} times faster
      than the SLO allows (availability ${var.availability_slo_goal * 100} %, latency ${var.latency_slo_goal * 100} % under ${var.latency_slo_threshold_ms} ms).

      Check first:
      1. Monitoring > Services > ${local.services.frontend}: which SLO, and how much budget is left.
      2. Availability: the same checks as the 5xx ratio alert (Error Reporting, logs by errorType,
         recent deploys). Latency: the p95 alert's checks (instances at max, slow backend traces).
      3. If a deploy started it, roll back first and investigate after.
      ${local.runbook_footer}
    EOT
  }
}
