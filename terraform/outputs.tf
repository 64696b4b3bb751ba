output "frontend_url" {
  description = "Public HTTPS endpoint of the frontend."
  value       = google_cloud_run_v2_service.frontend.uri
}

output "backend_url" {
  description = "URL of the private backend (callable only with the frontend's identity)."
  value       = google_cloud_run_v2_service.backend.uri
}

output "uptime_check_id" {
  description = "ID of the uptime check on the frontend's /healthz."
  value       = google_monitoring_uptime_check_config.frontend.uptime_check_id
}

output "dashboard_url" {
  description = "Cloud Monitoring dashboard of the service."
  value       = "https://console.cloud.google.com/monitoring/dashboards/custom/${element(split("/", google_monitoring_dashboard.service.id), 3)}?project=${var.project_id}"
}

output "image_repository" {
  description = "Artifact Registry path to push images to (cloudbuild.yaml's _REGION/_REPO)."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "build_service_account" {
  description = "Service account cloudbuild.yaml runs as."
  value       = google_service_account.build.email
}

output "build_source_bucket" {
  description = "Bucket for `gcloud builds submit --gcs-source-staging-dir`."
  value       = "gs://${google_storage_bucket.build_source.name}/source"
}

output "frontend_service_account" {
  description = "Identity of the frontend, the only one allowed to invoke the backend."
  value       = google_service_account.runtime["frontend"].email
}
