# A Cloud Monitoring service for the frontend with an availability and a latency SLO, and alerts
# on how fast each one burns its error budget: the pattern of Google's reference deployments
# (cloud-ops-sandbox), done here for Cloud Run, with the multi-window, multi-burn-rate alerting of
# the SRE Workbook (docs/burn-rate.md).

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

# Multi-window, multi-burn-rate alerting. Each SLO gets a fast-burn and a slow-burn policy; each
# policy pairs a long and a short lookback window of the same burn rate, and fires only while both
# are above the threshold (combiner AND). The pairs are the two paging rows of Table 5-8 of the SRE
# Workbook, "Alerting on SLOs" (https://sre.google/workbook/alerting-on-slos/): 14.4x over 1 h and
# 5 min, 6x over 6 h and 30 min. select_slo_burn_rate(SLO, LOOKBACK) is Cloud Monitoring's burn-rate
# selector, normalised so that 1 spends the budget exactly over the compliance period:
# https://cloud.google.com/stackdriver/docs/solutions/slo-monitoring/alerting-on-budget-burn-rate
#
# One policy per SLO and pair, because a policy has one combiner: (1 h AND 5 min) OR (6 h AND 30 min)
# cannot be a single policy. `count`, not `for_each`: the local emulator's Terraform reader expands
# `count` only, and reports the policies it skips by address.
locals {
  burn_rate_slos = [
    {
      key  = "availability"
      name = google_monitoring_slo.availability.name
      goal = var.availability_slo_goal
      what = "availability (${var.availability_slo_goal * 100} % of requests without a 5xx)"
    },
    {
      key  = "latency"
      name = google_monitoring_slo.latency.name
      goal = var.latency_slo_goal
      what = "latency (${var.latency_slo_goal * 100} % of requests under ${var.latency_slo_threshold_ms} ms)"
    },
  ]

  burn_rate_checks = <<-EOT
    Check first:
    1. Monitoring > Services > ${local.services.frontend}: which SLO, its burn-rate chart, and how much
       budget is left.
    2. Availability: the same checks as the 5xx ratio alert (Error Reporting, logs by errorType,
       recent deploys). Latency: the p95 alert's checks (instances at max, slow backend traces).
    3. If a deploy started it, roll back first and investigate after.
  EOT
}

resource "google_monitoring_alert_policy" "slo_burn_rate_fast" {
  count = length(local.burn_rate_slos)

  display_name          = "${local.services.frontend}: ${local.burn_rate_slos[count.index].key} SLO budget burning fast"
  combiner              = "AND"
  severity              = "CRITICAL"
  notification_channels = local.notification_channels

  conditions {
    display_name = "${local.burn_rate_slos[count.index].key} SLO burn rate > ${var.slo_fast_burn_rate_threshold}x over ${var.slo_fast_burn_long_window_s / 60} min"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${local.burn_rate_slos[count.index].name}\", \"${var.slo_fast_burn_long_window_s}s\")"
      comparison      = "COMPARISON_GT"
      threshold_value = var.slo_fast_burn_rate_threshold
      duration        = "0s"

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "${local.burn_rate_slos[count.index].key} SLO burn rate > ${var.slo_fast_burn_rate_threshold}x over ${var.slo_fast_burn_short_window_s / 60} min"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${local.burn_rate_slos[count.index].name}\", \"${var.slo_fast_burn_short_window_s}s\")"
      comparison      = "COMPARISON_GT"
      threshold_value = var.slo_fast_burn_rate_threshold
      duration        = "0s"

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${local.services.frontend}: ${local.burn_rate_slos[count.index].key} SLO budget burning at more than ${var.slo_fast_burn_rate_threshold}x"
    content   = <<-EOT
      The frontend's ${local.burn_rate_slos[count.index].what} SLO has spent its error budget more than
      ${var.slo_fast_burn_rate_threshold} times faster than the SLO allows, over the last ${var.slo_fast_burn_long_window_s / 60} min
      and still over the last ${var.slo_fast_burn_short_window_s / 60} min. At this rate the whole 28-day budget is gone in about
      ${floor(28 * 24 / var.slo_fast_burn_rate_threshold + 0.5)} h: this is an outage or a bad deploy, act now. The alert closes within
      about ${var.slo_fast_burn_short_window_s / 60} min of the burn stopping.

      ${local.burn_rate_checks}
      ${local.runbook_footer}
    EOT
  }

  lifecycle {
    precondition {
      condition     = var.slo_fast_burn_short_window_s < var.slo_fast_burn_long_window_s
      error_message = "slo_fast_burn_short_window_s (${var.slo_fast_burn_short_window_s}) must be shorter than slo_fast_burn_long_window_s (${var.slo_fast_burn_long_window_s})."
    }
    # SRE Workbook, "Extreme Availability Goals": with a low goal even a total outage cannot reach a
    # high threshold, and the alert could never fire. A total outage burns at 1 / (1 - goal).
    precondition {
      condition     = var.slo_fast_burn_rate_threshold < 1 / (1 - local.burn_rate_slos[count.index].goal)
      error_message = "slo_fast_burn_rate_threshold (${var.slo_fast_burn_rate_threshold}) can never be reached by the ${local.burn_rate_slos[count.index].key} SLO: with a goal of ${local.burn_rate_slos[count.index].goal} even a total outage burns at most ${1 / (1 - local.burn_rate_slos[count.index].goal)}x."
    }
  }
}

resource "google_monitoring_alert_policy" "slo_burn_rate_slow" {
  count = length(local.burn_rate_slos)

  display_name          = "${local.services.frontend}: ${local.burn_rate_slos[count.index].key} SLO budget burning steadily"
  combiner              = "AND"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "${local.burn_rate_slos[count.index].key} SLO burn rate > ${var.slo_slow_burn_rate_threshold}x over ${var.slo_slow_burn_long_window_s / 60} min"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${local.burn_rate_slos[count.index].name}\", \"${var.slo_slow_burn_long_window_s}s\")"
      comparison      = "COMPARISON_GT"
      threshold_value = var.slo_slow_burn_rate_threshold
      duration        = "0s"

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "${local.burn_rate_slos[count.index].key} SLO burn rate > ${var.slo_slow_burn_rate_threshold}x over ${var.slo_slow_burn_short_window_s / 60} min"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${local.burn_rate_slos[count.index].name}\", \"${var.slo_slow_burn_short_window_s}s\")"
      comparison      = "COMPARISON_GT"
      threshold_value = var.slo_slow_burn_rate_threshold
      duration        = "0s"

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${local.services.frontend}: ${local.burn_rate_slos[count.index].key} SLO budget burning at more than ${var.slo_slow_burn_rate_threshold}x for hours"
    content   = <<-EOT
      The frontend's ${local.burn_rate_slos[count.index].what} SLO has spent its error budget more than
      ${var.slo_slow_burn_rate_threshold} times faster than the SLO allows, over the last ${var.slo_slow_burn_long_window_s / 60} min
      and still over the last ${var.slo_slow_burn_short_window_s / 60} min. At this rate the whole 28-day budget is gone in about
      ${floor(28 * 24 / var.slo_slow_burn_rate_threshold + 0.5)} h: a partial failure or a slow regression that the fast-burn alert is
      too coarse to see. The alert closes within about ${var.slo_slow_burn_short_window_s / 60} min of the burn stopping.

      ${local.burn_rate_checks}
      ${local.runbook_footer}
    EOT
  }

  lifecycle {
    precondition {
      condition     = var.slo_slow_burn_short_window_s < var.slo_slow_burn_long_window_s
      error_message = "slo_slow_burn_short_window_s (${var.slo_slow_burn_short_window_s}) must be shorter than slo_slow_burn_long_window_s (${var.slo_slow_burn_long_window_s})."
    }
    precondition {
      condition     = var.slo_slow_burn_rate_threshold < 1 / (1 - local.burn_rate_slos[count.index].goal)
      error_message = "slo_slow_burn_rate_threshold (${var.slo_slow_burn_rate_threshold}) can never be reached by the ${local.burn_rate_slos[count.index].key} SLO: with a goal of ${local.burn_rate_slos[count.index].goal} even a total outage burns at most ${1 / (1 - local.burn_rate_slos[count.index].goal)}x."
    }
  }
}
