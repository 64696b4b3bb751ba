# Plan-time assertions on what matters in this deployment, run offline by infra-check with a mock
# google provider (the schema comes from the real provider; no API is called).

mock_provider "google" {
  override_during = plan

  override_resource {
    target = google_service_account.runtime["frontend"]
    values = {
      email  = "cloudrun-obs-frontend@test-project.iam.gserviceaccount.com"
      member = "serviceAccount:cloudrun-obs-frontend@test-project.iam.gserviceaccount.com"
      name   = "projects/test-project/serviceAccounts/cloudrun-obs-frontend@test-project.iam.gserviceaccount.com"
    }
  }

  override_resource {
    target = google_service_account.runtime["backend"]
    values = {
      email  = "cloudrun-obs-backend@test-project.iam.gserviceaccount.com"
      member = "serviceAccount:cloudrun-obs-backend@test-project.iam.gserviceaccount.com"
      name   = "projects/test-project/serviceAccounts/cloudrun-obs-backend@test-project.iam.gserviceaccount.com"
    }
  }

  override_resource {
    target = google_service_account.build
    values = {
      email  = "cloudrun-obs-build@test-project.iam.gserviceaccount.com"
      member = "serviceAccount:cloudrun-obs-build@test-project.iam.gserviceaccount.com"
    }
  }

  override_resource {
    target = google_cloud_run_v2_service.backend
    values = { uri = "https://cloudrun-obs-backend-abc123-ew.a.run.app" }
  }

  override_resource {
    target = google_cloud_run_v2_service.frontend
    values = { uri = "https://cloudrun-obs-frontend-abc123-ew.a.run.app" }
  }

  override_resource {
    target = google_monitoring_notification_channel.email
    values = { name = "projects/test-project/notificationChannels/111" }
  }

  override_resource {
    target = google_monitoring_uptime_check_config.frontend
    values = { uptime_check_id = "cloudrun-obs-frontend-healthz-abc" }
  }

  override_resource {
    target = google_monitoring_dashboard.service
    values = { id = "projects/123456/dashboards/0a1b2c3d" }
  }

  override_resource {
    target = google_monitoring_slo.availability
    values = { name = "projects/123456/services/cloudrun-obs-frontend/serviceLevelObjectives/availability" }
  }

  override_resource {
    target = google_monitoring_slo.latency
    values = { name = "projects/123456/services/cloudrun-obs-frontend/serviceLevelObjectives/latency" }
  }
}

variables {
  project_id         = "test-project"
  image              = "europe-west1-docker.pkg.dev/test-project/cloudrun-obs/cloudrun-obs:abc1234"
  notification_email = "oncall@example.com"
}

run "runtime_identities_have_exactly_the_four_telemetry_roles" {
  command = plan

  assert {
    condition = toset([for b in google_project_iam_member.runtime : "${b.member} ${b.role}"]) == toset([
      "serviceAccount:cloudrun-obs-frontend@test-project.iam.gserviceaccount.com roles/logging.logWriter",
      "serviceAccount:cloudrun-obs-frontend@test-project.iam.gserviceaccount.com roles/monitoring.metricWriter",
      "serviceAccount:cloudrun-obs-frontend@test-project.iam.gserviceaccount.com roles/cloudtrace.agent",
      "serviceAccount:cloudrun-obs-frontend@test-project.iam.gserviceaccount.com roles/telemetry.tracesWriter",
      "serviceAccount:cloudrun-obs-backend@test-project.iam.gserviceaccount.com roles/logging.logWriter",
      "serviceAccount:cloudrun-obs-backend@test-project.iam.gserviceaccount.com roles/monitoring.metricWriter",
      "serviceAccount:cloudrun-obs-backend@test-project.iam.gserviceaccount.com roles/cloudtrace.agent",
      "serviceAccount:cloudrun-obs-backend@test-project.iam.gserviceaccount.com roles/telemetry.tracesWriter",
    ])
    error_message = "Each runtime service account must hold exactly logging.logWriter, monitoring.metricWriter, cloudtrace.agent and telemetry.tracesWriter."
  }

  assert {
    condition     = google_cloud_run_v2_service.frontend.template[0].service_account == "cloudrun-obs-frontend@test-project.iam.gserviceaccount.com" && google_cloud_run_v2_service.backend.template[0].service_account == "cloudrun-obs-backend@test-project.iam.gserviceaccount.com"
    error_message = "Each service must run as its own service account."
  }
}

run "backend_is_private_and_only_the_frontend_may_invoke_it" {
  command = plan

  assert {
    condition     = google_cloud_run_v2_service_iam_member.backend_invoker.name == "cloudrun-obs-backend" && google_cloud_run_v2_service_iam_member.backend_invoker.role == "roles/run.invoker"
    error_message = "The backend needs a roles/run.invoker binding."
  }

  assert {
    condition     = google_cloud_run_v2_service.backend.invoker_iam_disabled != true
    error_message = "The backend must check IAM on every request (invoker_iam_disabled would make it public)."
  }

  assert {
    condition     = google_cloud_run_v2_service_iam_member.backend_invoker.member == "serviceAccount:cloudrun-obs-frontend@test-project.iam.gserviceaccount.com"
    error_message = "Only the frontend's service account may invoke the backend."
  }

  assert {
    condition     = google_cloud_run_v2_service_iam_member.frontend_public.name == "cloudrun-obs-frontend" && google_cloud_run_v2_service_iam_member.frontend_public.member == "allUsers" && google_cloud_run_v2_service_iam_member.frontend_public.role == "roles/run.invoker"
    error_message = "The frontend (and only the frontend) is public."
  }

  assert {
    condition     = one([for e in google_cloud_run_v2_service.frontend.template[0].containers[0].env : e.value if e.name == "DOWNSTREAM_URL"]) == "https://cloudrun-obs-backend-abc123-ew.a.run.app"
    error_message = "The frontend's DOWNSTREAM_URL must be the backend's URL (the ID token audience)."
  }

  assert {
    condition     = length([for e in google_cloud_run_v2_service.backend.template[0].containers[0].env : e if e.name == "DOWNSTREAM_URL"]) == 0
    error_message = "The backend has no downstream."
  }
}

run "services_keep_cpu_allocated_and_probe_healthz" {
  command = plan

  assert {
    condition = alltrue([for s in [google_cloud_run_v2_service.frontend, google_cloud_run_v2_service.backend] :
      s.template[0].containers[0].resources[0].cpu_idle == false && s.template[0].containers[0].resources[0].startup_cpu_boost == true
    ])
    error_message = "Both services need cpu_idle = false (telemetry export between requests) and startup CPU boost."
  }

  assert {
    condition = alltrue([for s in [google_cloud_run_v2_service.frontend, google_cloud_run_v2_service.backend] :
      s.template[0].containers[0].startup_probe[0].http_get[0].path == "/healthz" && s.template[0].containers[0].liveness_probe[0].http_get[0].path == "/healthz"
    ])
    error_message = "Startup and liveness probes must use /healthz."
  }

  assert {
    condition = alltrue([for s in [google_cloud_run_v2_service.frontend, google_cloud_run_v2_service.backend] :
      one([for e in s.template[0].containers[0].env : e.value if e.name == "GOOGLE_CLOUD_PROJECT"]) == "test-project" && one([for e in s.template[0].containers[0].env : e.value if e.name == "ENABLE_FAULT_ROUTES"]) == "false"
    ])
    error_message = "GOOGLE_CLOUD_PROJECT must be set and fault routes off by default."
  }

  assert {
    condition     = google_cloud_run_v2_service.frontend.template[0].scaling[0].min_instance_count == 0 && google_cloud_run_v2_service.frontend.template[0].scaling[0].max_instance_count == 5
    error_message = "Scaling comes from the variables' defaults."
  }
}

run "uptime_check_probes_the_frontend_healthz_over_https" {
  command = plan

  assert {
    condition     = google_monitoring_uptime_check_config.frontend.http_check[0].path == "/healthz" && google_monitoring_uptime_check_config.frontend.http_check[0].use_ssl == true && google_monitoring_uptime_check_config.frontend.period == "60s"
    error_message = "The uptime check must GET /healthz over HTTPS every 60 s."
  }

  assert {
    condition     = google_monitoring_uptime_check_config.frontend.monitored_resource[0].labels.host == "cloudrun-obs-frontend-abc123-ew.a.run.app"
    error_message = "The uptime check must target the frontend's host."
  }

  assert {
    condition     = strcontains(google_monitoring_alert_policy.uptime.conditions[0].condition_threshold[0].filter, "metric.label.check_id=\"cloudrun-obs-frontend-healthz-abc\"")
    error_message = "The uptime alert must watch this uptime check."
  }
}

run "every_alert_notifies_the_email_channel_and_documents_what_to_check" {
  command = plan

  assert {
    condition = alltrue([for p in concat([
      google_monitoring_alert_policy.uptime,
      google_monitoring_alert_policy.latency_p95,
      google_monitoring_alert_policy.error_ratio,
      google_monitoring_alert_policy.error_logs,
      ], google_monitoring_alert_policy.slo_burn_rate_fast, google_monitoring_alert_policy.slo_burn_rate_slow,
    ) : contains(p.notification_channels, "projects/test-project/notificationChannels/111") && strcontains(p.documentation[0].content, "Check first")])
    error_message = "Every alert policy must notify the email channel and tell the on-call what to check first."
  }

  assert {
    condition     = length(google_monitoring_notification_channel.webhook) == 0 && length(google_monitoring_alert_policy.no_requests) == 0
    error_message = "Webhook channel and no-traffic alert are off unless asked for."
  }
}

run "thresholds_come_from_variables" {
  command = plan

  variables {
    latency_p95_threshold_ms = 2500
    error_ratio_threshold    = 0.2
    error_log_threshold      = 42
    expected_min_requests    = true
    notification_webhook_url = "https://hooks.example.com/alerts/t0k3n"
  }

  assert {
    condition     = google_monitoring_alert_policy.latency_p95.conditions[0].condition_threshold[0].threshold_value == 2.5
    error_message = "The p95 threshold must come from latency_p95_threshold_ms (in seconds)."
  }

  assert {
    condition     = google_monitoring_alert_policy.error_ratio.conditions[0].condition_threshold[0].threshold_value == 0.2 && google_monitoring_alert_policy.error_ratio.conditions[0].condition_threshold[0].denominator_filter != null
    error_message = "The 5xx ratio threshold must come from error_ratio_threshold, with a denominator."
  }

  assert {
    condition     = google_monitoring_alert_policy.error_logs.conditions[0].condition_threshold[0].threshold_value == 42 / 60
    error_message = "The error log threshold must come from error_log_threshold (per minute, as a per-second rate)."
  }

  assert {
    condition     = length(google_monitoring_alert_policy.no_requests) == 1 && google_monitoring_alert_policy.no_requests[0].conditions[0].condition_absent[0].duration == "600s"
    error_message = "expected_min_requests = true must create the no-traffic alert."
  }

  assert {
    condition     = length(google_monitoring_notification_channel.webhook) == 1 && length(google_monitoring_alert_policy.uptime.notification_channels) == 2
    error_message = "A webhook URL must add a second channel to every alert."
  }
}

# Multi-window, multi-burn-rate SLO alerting (slo.tf, docs/burn-rate.md): per SLO, a fast-burn and a
# slow-burn policy, each firing only while the burn rate is above its threshold over both of its
# windows. Defaults: the SRE Workbook's Table 5-8 paging rows, https://sre.google/workbook/alerting-on-slos/
run "slo_burn_rate_alerts_pair_a_long_and_a_short_window" {
  command = plan

  assert {
    condition = toset([for p in concat(google_monitoring_alert_policy.slo_burn_rate_fast, google_monitoring_alert_policy.slo_burn_rate_slow) :
      join(" | ", concat([p.combiner], [for c in p.conditions : "${c.condition_threshold[0].filter} ${c.condition_threshold[0].comparison} ${c.condition_threshold[0].threshold_value} for ${c.condition_threshold[0].duration}"]))
      ]) == toset([
      "AND | select_slo_burn_rate(\"projects/123456/services/cloudrun-obs-frontend/serviceLevelObjectives/availability\", \"3600s\") COMPARISON_GT 14.4 for 0s | select_slo_burn_rate(\"projects/123456/services/cloudrun-obs-frontend/serviceLevelObjectives/availability\", \"300s\") COMPARISON_GT 14.4 for 0s",
      "AND | select_slo_burn_rate(\"projects/123456/services/cloudrun-obs-frontend/serviceLevelObjectives/latency\", \"3600s\") COMPARISON_GT 14.4 for 0s | select_slo_burn_rate(\"projects/123456/services/cloudrun-obs-frontend/serviceLevelObjectives/latency\", \"300s\") COMPARISON_GT 14.4 for 0s",
      "AND | select_slo_burn_rate(\"projects/123456/services/cloudrun-obs-frontend/serviceLevelObjectives/availability\", \"21600s\") COMPARISON_GT 6 for 0s | select_slo_burn_rate(\"projects/123456/services/cloudrun-obs-frontend/serviceLevelObjectives/availability\", \"1800s\") COMPARISON_GT 6 for 0s",
      "AND | select_slo_burn_rate(\"projects/123456/services/cloudrun-obs-frontend/serviceLevelObjectives/latency\", \"21600s\") COMPARISON_GT 6 for 0s | select_slo_burn_rate(\"projects/123456/services/cloudrun-obs-frontend/serviceLevelObjectives/latency\", \"1800s\") COMPARISON_GT 6 for 0s",
    ])
    error_message = "Each SLO needs a fast-burn policy (14.4x over 1 h AND 5 min) and a slow-burn policy (6x over 6 h AND 30 min)."
  }

  assert {
    condition     = alltrue([for p in google_monitoring_alert_policy.slo_burn_rate_fast : p.severity == "CRITICAL"]) && alltrue([for p in google_monitoring_alert_policy.slo_burn_rate_slow : p.severity == "ERROR"])
    error_message = "A fast burn is critical, a slow burn an error."
  }
}

run "slo_burn_rate_pairs_come_from_variables" {
  command = plan

  variables {
    slo_fast_burn_rate_threshold = 10
    slo_fast_burn_long_window_s  = 7200
    slo_fast_burn_short_window_s = 600
    slo_slow_burn_rate_threshold = 2
    slo_slow_burn_long_window_s  = 86400
    slo_slow_burn_short_window_s = 7200
  }

  assert {
    condition = alltrue([for p in google_monitoring_alert_policy.slo_burn_rate_fast :
      p.combiner == "AND" && length(p.conditions) == 2 &&
      endswith(p.conditions[0].condition_threshold[0].filter, ", \"7200s\")") && endswith(p.conditions[1].condition_threshold[0].filter, ", \"600s\")") &&
      alltrue([for c in p.conditions : c.condition_threshold[0].threshold_value == 10])
    ])
    error_message = "The fast-burn pair must come from slo_fast_burn_rate_threshold, slo_fast_burn_long_window_s and slo_fast_burn_short_window_s."
  }

  assert {
    condition = alltrue([for p in google_monitoring_alert_policy.slo_burn_rate_slow :
      p.combiner == "AND" && length(p.conditions) == 2 &&
      endswith(p.conditions[0].condition_threshold[0].filter, ", \"86400s\")") && endswith(p.conditions[1].condition_threshold[0].filter, ", \"7200s\")") &&
      alltrue([for c in p.conditions : c.condition_threshold[0].threshold_value == 2])
    ])
    error_message = "The slow-burn pair must come from slo_slow_burn_rate_threshold, slo_slow_burn_long_window_s and slo_slow_burn_short_window_s."
  }
}

run "rejects_a_short_window_not_shorter_than_its_long_one" {
  command = plan

  variables {
    slo_slow_burn_short_window_s = 21600
  }

  expect_failures = [google_monitoring_alert_policy.slo_burn_rate_slow]
}

run "rejects_a_burn_rate_no_outage_can_reach" {
  command = plan

  # A 95 % latency goal: even every request slow burns at 20x at most.
  variables {
    slo_fast_burn_rate_threshold = 25
  }

  expect_failures = [google_monitoring_alert_policy.slo_burn_rate_fast]
}

run "rejects_a_burn_rate_threshold_of_one_or_less" {
  command = plan

  variables {
    slo_slow_burn_rate_threshold = 1
  }

  expect_failures = [var.slo_slow_burn_rate_threshold]
}

# The Telemetry API (OTLP, issue 17): enabled, and the runtime accounts hold its traces role and no broader one.
run "telemetry_api_is_enabled_and_runtime_accounts_may_only_write_its_traces" {
  command = plan

  assert {
    condition     = contains([for s in google_project_service.enabled : s.service], "telemetry.googleapis.com") && contains([for s in google_project_service.enabled : s.service], "cloudtrace.googleapis.com")
    error_message = "The Telemetry API (telemetry.googleapis.com) must be enabled, with the Cloud Trace API it stores spans through."
  }

  assert {
    condition = alltrue([for sa in ["cloudrun-obs-frontend", "cloudrun-obs-backend"] :
      contains([for b in google_project_iam_member.runtime : b.role if b.member == "serviceAccount:${sa}@test-project.iam.gserviceaccount.com"], "roles/telemetry.tracesWriter")
    ])
    error_message = "Each runtime service account needs roles/telemetry.tracesWriter to send spans to the Telemetry API."
  }

  assert {
    condition = length([for b in google_project_iam_member.runtime : b.role if contains([
      "roles/telemetry.writer", "roles/telemetry.editor", "roles/telemetry.admin", "roles/telemetry.metricsWriter", "roles/telemetry.logsWriter",
      "roles/cloudtrace.admin", "roles/cloudtrace.user", "roles/monitoring.editor", "roles/monitoring.admin", "roles/logging.admin",
      "roles/editor", "roles/owner",
    ], b.role)]) == 0
    error_message = "No broader role than telemetry.tracesWriter for the runtime accounts: not telemetry.writer, editor or admin, nor the metrics or logs writers (metrics and logs do not go through OTLP)."
  }
}

run "build_identity_is_scoped_to_this_deployment" {
  command = plan

  assert {
    condition     = google_project_iam_member.build_log_writer.role == "roles/logging.logWriter"
    error_message = "The build's only project-wide role is logging.logWriter."
  }

  assert {
    condition     = toset([for b in google_cloud_run_v2_service_iam_member.build_deployer : "${b.name} ${b.role}"]) == toset(["cloudrun-obs-frontend roles/run.developer", "cloudrun-obs-backend roles/run.developer"])
    error_message = "The build may deploy the two services, on the services themselves."
  }

  assert {
    condition     = toset([for b in google_service_account_iam_member.build_acts_as_runtime : b.service_account_id]) == toset(["projects/test-project/serviceAccounts/cloudrun-obs-frontend@test-project.iam.gserviceaccount.com", "projects/test-project/serviceAccounts/cloudrun-obs-backend@test-project.iam.gserviceaccount.com"])
    error_message = "The build may act as the two runtime accounts only."
  }

  assert {
    condition     = google_artifact_registry_repository_iam_member.build_pusher.role == "roles/artifactregistry.writer" && google_storage_bucket.build_source.public_access_prevention == "enforced"
    error_message = "The build pushes to its repository; the source bucket is never public."
  }
}

run "required_apis_are_enabled" {
  command = plan

  assert {
    condition = toset([for s in google_project_service.enabled : s.service]) == toset([
      "artifactregistry.googleapis.com", "cloudbuild.googleapis.com", "cloudtrace.googleapis.com",
      "iam.googleapis.com", "logging.googleapis.com", "monitoring.googleapis.com", "run.googleapis.com",
      "telemetry.googleapis.com",
    ])
    error_message = "The deployment needs exactly these APIs."
  }
}

run "rejects_an_image_outside_artifact_registry" {
  command = plan

  variables {
    image = "docker.io/library/nginx:latest"
  }

  expect_failures = [var.image]
}
