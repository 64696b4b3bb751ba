variable "project_id" {
  description = "Google Cloud project that hosts the services, the image repository and the monitoring."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lowercase letters, digits or hyphens, starting with a letter), not a project name or number."
  }
}

variable "region" {
  description = "Region for Cloud Run, Artifact Registry and the Cloud Build source bucket, e.g. europe-west1."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1."
  }
}

variable "name" {
  description = "Prefix of every resource name: services are NAME-frontend and NAME-backend, the repository NAME, the build account NAME-build. Must match cloudbuild.yaml's _SERVICE and _REPO."
  type        = string
  default     = "cloudrun-obs"

  validation {
    # Service accounts allow 30 characters: the longest suffix is "-frontend" (9).
    condition     = can(regex("^[a-z][a-z0-9-]{4,19}[a-z0-9]$", var.name))
    error_message = "name must be 6-21 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "image" {
  description = "Container image for the first deployment, e.g. europe-west1-docker.pkg.dev/PROJECT/cloudrun-obs/cloudrun-obs:abc1234. Later images are rolled out by cloudbuild.yaml; Terraform ignores image changes after creation."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+-docker\\.pkg\\.dev/[^/]+/[^/]+/[^:@]+[:@].+$", var.image))
    error_message = "image must be an Artifact Registry reference with a tag or digest: REGION-docker.pkg.dev/PROJECT/REPO/IMAGE:TAG."
  }
}

variable "frontend_min_instances" {
  description = "Minimum frontend instances. 0 lets the public service scale to zero (cold starts on the first request); 1 keeps one warm instance billed around the clock."
  type        = number
  default     = 0

  validation {
    condition     = var.frontend_min_instances >= 0 && var.frontend_min_instances <= 100 && floor(var.frontend_min_instances) == var.frontend_min_instances
    error_message = "frontend_min_instances must be a whole number between 0 and 100."
  }
}

variable "frontend_max_instances" {
  description = "Maximum frontend instances: the cost ceiling under load or attack."
  type        = number
  default     = 5

  validation {
    condition     = var.frontend_max_instances >= 1 && var.frontend_max_instances <= 100 && floor(var.frontend_max_instances) == var.frontend_max_instances
    error_message = "frontend_max_instances must be a whole number between 1 and 100."
  }
}

variable "backend_min_instances" {
  description = "Minimum backend instances (0 = scale to zero)."
  type        = number
  default     = 0

  validation {
    condition     = var.backend_min_instances >= 0 && var.backend_min_instances <= 100 && floor(var.backend_min_instances) == var.backend_min_instances
    error_message = "backend_min_instances must be a whole number between 0 and 100."
  }
}

variable "backend_max_instances" {
  description = "Maximum backend instances."
  type        = number
  default     = 5

  validation {
    condition     = var.backend_max_instances >= 1 && var.backend_max_instances <= 100 && floor(var.backend_max_instances) == var.backend_max_instances
    error_message = "backend_max_instances must be a whole number between 1 and 100."
  }
}

variable "enable_fault_routes" {
  description = "Expose the fault-injection routes (/api/faults/*) used to exercise the alerts. Keep false in production."
  type        = bool
  default     = false
}

variable "payment_failure_rate" {
  description = "Share of simulated payments that fail (PAYMENT_FAILURE_RATE), 0 to 1."
  type        = number
  default     = 0.02

  validation {
    condition     = var.payment_failure_rate >= 0 && var.payment_failure_rate <= 1
    error_message = "payment_failure_rate must be between 0 and 1."
  }
}

variable "trace_sampling_ratio" {
  description = "Share of root traces sampled (OTEL_TRACES_SAMPLER_ARG). 0.1 keeps Cloud Trace cost and ingestion low in production."
  type        = number
  default     = 0.1

  validation {
    condition     = var.trace_sampling_ratio >= 0 && var.trace_sampling_ratio <= 1
    error_message = "trace_sampling_ratio must be between 0 and 1."
  }
}

variable "metric_export_interval_ms" {
  description = "Metric export interval in ms (OTEL_METRIC_EXPORT_INTERVAL). Cloud Monitoring accepts one point per series every 5 s at most; 60000 matches the alert alignment periods."
  type        = number
  default     = 60000

  validation {
    condition     = var.metric_export_interval_ms >= 10000 && var.metric_export_interval_ms <= 300000
    error_message = "metric_export_interval_ms must be between 10000 and 300000."
  }
}

variable "log_level" {
  description = "RUST_LOG filter of the services, e.g. info or info,cloudrun_observability=debug."
  type        = string
  default     = "info"

  validation {
    condition     = can(regex("^[A-Za-z0-9_:=,.-]+$", var.log_level))
    error_message = "log_level must be a RUST_LOG directive list such as info or info,cloudrun_observability=debug."
  }
}

variable "notification_email" {
  description = "Email address that receives every alert (the on-call rotation's list, not a person)."
  type        = string

  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.notification_email))
    error_message = "notification_email must be an email address."
  }
}

variable "notification_webhook_url" {
  description = "Optional HTTPS webhook (chat bridge, incident tool) that also receives every alert. Empty to disable."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = var.notification_webhook_url == "" || startswith(var.notification_webhook_url, "https://")
    error_message = "notification_webhook_url must be empty or an https:// URL."
  }
}

variable "latency_p95_threshold_ms" {
  description = "Alert when the frontend's p95 request duration stays above this many milliseconds for 5 minutes."
  type        = number
  default     = 1000

  validation {
    condition     = var.latency_p95_threshold_ms > 0 && var.latency_p95_threshold_ms <= 60000
    error_message = "latency_p95_threshold_ms must be between 0 (exclusive) and 60000."
  }
}

variable "error_ratio_threshold" {
  description = "Alert when the share of 5xx responses of the frontend stays above this ratio (0.05 = 5 %) for 5 minutes."
  type        = number
  default     = 0.05

  validation {
    condition     = var.error_ratio_threshold > 0 && var.error_ratio_threshold < 1
    error_message = "error_ratio_threshold must be between 0 and 1 (exclusive)."
  }
}

variable "error_log_threshold" {
  description = "Alert when both services together write more than this many ERROR log entries per minute for 5 minutes."
  type        = number
  default     = 10

  validation {
    condition     = var.error_log_threshold >= 1
    error_message = "error_log_threshold must be at least 1."
  }
}

variable "expected_min_requests" {
  description = "Set to true when the frontend always has traffic: then an alert fires when it receives no request at all for 10 minutes. Leave false for services that legitimately sit idle."
  type        = bool
  default     = false
}

variable "availability_slo_goal" {
  description = "Availability SLO of the frontend: share of requests answered without a 5xx, over a rolling 28 days."
  type        = number
  default     = 0.995

  validation {
    condition     = var.availability_slo_goal > 0.5 && var.availability_slo_goal < 1
    error_message = "availability_slo_goal must be between 0.5 and 1 (exclusive), e.g. 0.995."
  }
}

variable "latency_slo_goal" {
  description = "Latency SLO of the frontend: share of requests faster than latency_slo_threshold_ms, over a rolling 28 days."
  type        = number
  default     = 0.95

  validation {
    condition     = var.latency_slo_goal > 0.5 && var.latency_slo_goal < 1
    error_message = "latency_slo_goal must be between 0.5 and 1 (exclusive), e.g. 0.95."
  }
}

variable "latency_slo_threshold_ms" {
  description = "A request slower than this many milliseconds counts against the latency SLO."
  type        = number
  default     = 500

  validation {
    condition     = var.latency_slo_threshold_ms > 0 && var.latency_slo_threshold_ms <= 60000
    error_message = "latency_slo_threshold_ms must be between 0 (exclusive) and 60000."
  }
}

# Multi-window, multi-burn-rate alerting on the SLOs (slo.tf). The defaults are the two paging rows of
# the SRE Workbook's Table 5-8, "Recommended parameters for a 99.9% SLO alerting configuration":
# https://sre.google/workbook/alerting-on-slos/ . A pair fires only while the burn rate is above its
# threshold over both windows: the long window makes the spend significant, the short one makes the
# alert stop soon after the burn does. docs/burn-rate.md says what each pair catches.

variable "slo_fast_burn_rate_threshold" {
  description = "Fast-burn page: burn-rate threshold over both of its windows (14.4 = 2 % of a 30-day budget in 1 h; a 28-day budget lasts about 47 h at that rate)."
  type        = number
  default     = 14.4

  validation {
    condition     = var.slo_fast_burn_rate_threshold > 1
    error_message = "slo_fast_burn_rate_threshold must be above 1 (1 = spending the budget exactly over the SLO period)."
  }
}

variable "slo_fast_burn_long_window_s" {
  description = "Fast-burn page: long lookback window of select_slo_burn_rate, in seconds (3600 = 1 h)."
  type        = number
  default     = 3600

  validation {
    condition     = var.slo_fast_burn_long_window_s >= 60 && var.slo_fast_burn_long_window_s <= 2419200 && var.slo_fast_burn_long_window_s % 60 == 0
    error_message = "slo_fast_burn_long_window_s must be whole minutes in seconds, from 60 to 2419200 (the 28-day SLO period)."
  }
}

variable "slo_fast_burn_short_window_s" {
  description = "Fast-burn page: short lookback window, in seconds (300 = 5 min, 1/12 of the long one as the SRE Workbook suggests); must be shorter than the long window."
  type        = number
  default     = 300

  validation {
    condition     = var.slo_fast_burn_short_window_s >= 60 && var.slo_fast_burn_short_window_s <= 2419200 && var.slo_fast_burn_short_window_s % 60 == 0
    error_message = "slo_fast_burn_short_window_s must be whole minutes in seconds, from 60 to 2419200 (the 28-day SLO period)."
  }
}

variable "slo_slow_burn_rate_threshold" {
  description = "Slow-burn page: burn-rate threshold over both of its windows (6 = 5 % of a 30-day budget in 6 h; a 28-day budget lasts 112 h at that rate)."
  type        = number
  default     = 6

  validation {
    condition     = var.slo_slow_burn_rate_threshold > 1
    error_message = "slo_slow_burn_rate_threshold must be above 1 (1 = spending the budget exactly over the SLO period)."
  }
}

variable "slo_slow_burn_long_window_s" {
  description = "Slow-burn page: long lookback window of select_slo_burn_rate, in seconds (21600 = 6 h)."
  type        = number
  default     = 21600

  validation {
    condition     = var.slo_slow_burn_long_window_s >= 60 && var.slo_slow_burn_long_window_s <= 2419200 && var.slo_slow_burn_long_window_s % 60 == 0
    error_message = "slo_slow_burn_long_window_s must be whole minutes in seconds, from 60 to 2419200 (the 28-day SLO period)."
  }
}

variable "slo_slow_burn_short_window_s" {
  description = "Slow-burn page: short lookback window, in seconds (1800 = 30 min); must be shorter than the long window."
  type        = number
  default     = 1800

  validation {
    condition     = var.slo_slow_burn_short_window_s >= 60 && var.slo_slow_burn_short_window_s <= 2419200 && var.slo_slow_burn_short_window_s % 60 == 0
    error_message = "slo_slow_burn_short_window_s must be whole minutes in seconds, from 60 to 2419200 (the 28-day SLO period)."
  }
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` of the Cloud Run services. Turn off only to tear the deployment down."
  type        = bool
  default     = true
}
