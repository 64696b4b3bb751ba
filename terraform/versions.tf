terraform {
  # Plan and apply need 1.5; tests/*.tftest.hcl (mock provider with override_during) need 1.11+.
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # infra-check validates against the schema of hashicorp/google 6.50.0: keep this major in step.
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
