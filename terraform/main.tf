locals {
  services = {
    frontend = "${var.name}-frontend"
    backend  = "${var.name}-backend"
  }

  # Every Cloud Logging filter below starts from the request and application logs of the two services.
  run_logs_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(\"${local.services.frontend}\" OR \"${local.services.backend}\")"

  # The service writes its own metrics on generic_task, not cloud_run_revision: Cloud Monitoring
  # refuses custom metrics on cloud_run_revision, and generic_task's namespace (K_SERVICE) and
  # task_id (instance id) keep one series per instance, so instances never overwrite each other.
  frontend_metric_resource = "resource.type=\"generic_task\" AND resource.labels.namespace=\"${local.services.frontend}\""
}

# The APIs this deployment calls. Destroying the deployment leaves them enabled: other workloads in
# the project may use them, and disabling an API can delete their data.
resource "google_project_service" "enabled" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudtrace.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    # The Telemetry API: OTLP ingestion of the services' spans. It checks that the Cloud Trace API is
    # enabled before it stores them, so both stay on:
    # https://docs.cloud.google.com/stackdriver/docs/reference/telemetry/v1.traces
    "telemetry.googleapis.com",
  ])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
