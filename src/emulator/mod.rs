//! A local stand-in for the Cloud Trace and Cloud Monitoring APIs.
