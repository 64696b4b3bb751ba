locals {
  # Everything a runtime account may do: write its logs, metrics and spans. Nothing else.
  # - cloudtrace.agent: spans through Cloud Trace v2 (OTEL_TRACES_EXPORTER=gcp_trace).
  # - telemetry.tracesWriter: spans through the Telemetry API's OTLP endpoint, telemetry.googleapis.com
  #   (the default trace path). Its only permission is telemetry.traces.write:
  #   https://cloud.google.com/iam/docs/roles-permissions/telemetry . cloudtrace.agent holds that
  #   permission too (https://cloud.google.com/iam/docs/roles-permissions/cloudtrace), so this grant
  #   adds no permission today; it keeps the OTLP path working when the v2 exporter and its role go.
  # Metrics stay on Monitoring v3 (monitoring.metricWriter) and logs on Cloud Logging (logWriter).
  # Sending metrics or logs through OTLP would need roles/telemetry.metricsWriter or
  # roles/telemetry.logsWriter (Beta); never the broader telemetry.writer, editor or admin.
  runtime_roles = [
    "roles/cloudtrace.agent",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/telemetry.tracesWriter",
  ]

  runtime_bindings = {
    for pair in setproduct(keys(local.services), local.runtime_roles) :
    "${pair[0]}/${pair[1]}" => { service = pair[0], role = pair[1] }
  }
}

# One identity per service, so the backend can tell the frontend's calls from anyone else's and a
# compromise of one service does not carry the other's permissions.
resource "google_service_account" "runtime" {
  for_each = local.services

  account_id   = each.value
  display_name = "Cloud Run runtime: ${each.value}"
  description  = "Runs ${each.value}; may only write logs, metrics and traces."

  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "runtime" {
  for_each = local.runtime_bindings

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.runtime[each.value.service].member
}

# The public endpoint. Organisations with the "Domain restricted sharing" policy must allow allUsers
# for this project, or the frontend answers 403 to everyone.
resource "google_cloud_run_v2_service_iam_member" "frontend_public" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.frontend.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# The only caller of the backend: the frontend's service account.
resource "google_cloud_run_v2_service_iam_member" "backend_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.backend.name
  role     = "roles/run.invoker"
  member   = google_service_account.runtime["frontend"].member
}
