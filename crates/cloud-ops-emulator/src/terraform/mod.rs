//! Reads the deployment's Terraform (`terraform/*.tf`) the way Terraform
//! would evaluate it, as far as the emulator needs: variables take their
//! defaults (or values from a `.tfvars` file, or explicit overrides), locals
//! and references between resources resolve, `count` expands.
//!
//! The point is that the emulator evaluates *the Terraform files
//! themselves* (alert policies, log-based metrics, uptime checks,
//! notification channels) against the data the service really emitted: a
//! threshold changed in `terraform/` changes what the emulator does, with
//! nothing copied by hand.
//!
//! Values only known after `terraform apply` (a service's URL, an uptime
//! check's id, a channel's name) are given stable stand-ins derived from the
//! resource's address, e.g. `uptime_check_id = "frontend"`. Only the
//! monitoring and logging resources are evaluated; others exist as
//! stand-ins that references can reach.
//!
//! Why one file: the evaluator of expressions, references, `count` and
//! `dynamic` is one recursive walk over one context; its two small neighbours
//! (`arguments`, `check_filters`) are apart.

pub mod arguments;
pub mod check_filters;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Block, Body, Expression, Map, Structure, Value};
use thiserror::Error;

/// The resource types the emulator evaluates fully.
pub const EVALUATED_TYPES: &[&str] = &[
    "google_logging_metric",
    "google_monitoring_alert_policy",
    "google_monitoring_uptime_check_config",
    "google_monitoring_notification_channel",
    "google_monitoring_custom_service",
    "google_monitoring_slo",
];

/// Terraform's meta-arguments: not part of a resource's configuration.
const META_ARGUMENTS: &[&str] = &["count", "for_each", "depends_on", "lifecycle", "provider"];

#[derive(Debug, Error)]
pub enum TerraformError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid HCL: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: hcl::Error,
    },
    #[error("no .tf files in {0}")]
    Empty(PathBuf),
    #[error("variable {name} from {origin}: {message}")]
    Variable {
        name: String,
        origin: String,
        message: String,
    },
}

/// One instance of an evaluated resource (`count` makes several).
#[derive(Clone, Debug)]
pub struct ResourceInstance {
    pub resource_type: String,
    pub name: String,
    pub index: Option<usize>,
    /// Arguments and nested blocks; a nested block is an array of objects
    /// under its name, even when it may appear once.
    pub value: Map<String, Value>,
}

impl ResourceInstance {
    /// The evaluated configuration as JSON, to navigate or to deserialize
    /// into a typed model.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.value).unwrap_or(serde_json::Value::Null)
    }

    /// `type.name` or `type.name[i]`, as Terraform writes addresses.
    pub fn address(&self) -> String {
        match self.index {
            Some(index) => format!("{}.{}[{index}]", self.resource_type, self.name),
            None => format!("{}.{}", self.resource_type, self.name),
        }
    }
}

/// The evaluated module.
#[derive(Clone, Debug, Default)]
pub struct TerraformModule {
    pub resources: Vec<ResourceInstance>,
    /// What could not be evaluated, by address, with why; never silently
    /// ignored.
    pub problems: Vec<String>,
}

impl TerraformModule {
    /// The instances of one resource type, in address order.
    pub fn of_type<'a>(
        &'a self,
        resource_type: &'a str,
    ) -> impl Iterator<Item = &'a ResourceInstance> + 'a {
        self.resources
            .iter()
            .filter(move |resource| resource.resource_type == resource_type)
    }
}

/// Where variables come from, besides their defaults.
#[derive(Clone, Debug, Default)]
pub struct VariableInputs {
    /// A `.tfvars` file.
    pub var_file: Option<PathBuf>,
    /// `name = value` pairs, as `-var`; they win over the file.
    pub overrides: Vec<(String, Value)>,
}

/// What the `.tf` files declare.
#[derive(Default)]
struct Declarations {
    variables: BTreeMap<String, Option<Expression>>,
    locals: BTreeMap<String, Expression>,
    resources: Vec<(String, String, Body)>,
}

/// Loads and evaluates `dir/*.tf`.
pub fn load(dir: &Path, inputs: &VariableInputs) -> Result<TerraformModule, TerraformError> {
    let declarations = read_declarations(dir)?;
    let variables = variable_values(&declarations, inputs)?;
    Ok(Evaluator::new(declarations, variables).run())
}

fn read_declarations(dir: &Path) -> Result<Declarations, TerraformError> {
    let read_error = |source| TerraformError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "tf"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(TerraformError::Empty(dir.to_owned()));
    }
    let mut declarations = Declarations::default();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| TerraformError::Read {
            path: path.clone(),
            source,
        })?;
        let body = hcl::parse(&text).map_err(|source| TerraformError::Parse { path, source })?;
        for block in body.blocks() {
            declare(&mut declarations, block);
        }
    }
    Ok(declarations)
}

fn declare(declarations: &mut Declarations, block: &Block) {
    let labels: Vec<&str> = block.labels().iter().map(|label| label.as_str()).collect();
    match (block.identifier(), labels.as_slice()) {
        ("variable", [name]) => {
            let default = block
                .body()
                .attributes()
                .find(|attribute| attribute.key() == "default")
                .map(|attribute| attribute.expr().clone());
            declarations.variables.insert((*name).to_owned(), default);
        }
        ("locals", []) => {
            for attribute in block.body().attributes() {
                declarations
                    .locals
                    .insert(attribute.key().to_owned(), attribute.expr().clone());
            }
        }
        ("resource", [resource_type, name]) => declarations.resources.push((
            (*resource_type).to_owned(),
            (*name).to_owned(),
            block.body().clone(),
        )),
        _ => {}
    }
}

/// Defaults, then the var-file, then overrides. A variable with none of
/// them gets a `<var.NAME>` stand-in, like an unknown value in a plan.
fn variable_values(
    declarations: &Declarations,
    inputs: &VariableInputs,
) -> Result<Map<String, Value>, TerraformError> {
    let empty = Context::new();
    let mut values = Map::new();
    for (name, default) in &declarations.variables {
        let value = match default {
            Some(expression) => {
                expression
                    .evaluate(&empty)
                    .map_err(|error| TerraformError::Variable {
                        name: name.clone(),
                        origin: "its default".into(),
                        message: error.to_string(),
                    })?
            }
            None => Value::String(format!("<var.{name}>")),
        };
        values.insert(name.clone(), value);
    }
    if let Some(path) = &inputs.var_file {
        let text = std::fs::read_to_string(path).map_err(|source| TerraformError::Read {
            path: path.clone(),
            source,
        })?;
        let body = hcl::parse(&text).map_err(|source| TerraformError::Parse {
            path: path.clone(),
            source,
        })?;
        for attribute in body.attributes() {
            let value =
                attribute
                    .expr()
                    .evaluate(&empty)
                    .map_err(|error| TerraformError::Variable {
                        name: attribute.key().to_owned(),
                        origin: path.display().to_string(),
                        message: error.to_string(),
                    })?;
            values.insert(attribute.key().to_owned(), value);
        }
    }
    for (name, value) in &inputs.overrides {
        if !declarations.variables.contains_key(name) {
            return Err(TerraformError::Variable {
                name: name.clone(),
                origin: "an override".into(),
                message: "no such variable is declared".into(),
            });
        }
        values.insert(name.clone(), value.clone());
    }
    Ok(values)
}

struct Evaluator {
    declarations: Declarations,
    variables: Map<String, Value>,
    locals: Map<String, Value>,
    /// type -> name -> value (an object, or an array of objects with count).
    resources: BTreeMap<String, Map<String, Value>>,
    evaluated: Vec<ResourceInstance>,
    done: Vec<bool>,
}

impl Evaluator {
    fn new(declarations: Declarations, variables: Map<String, Value>) -> Self {
        // Resources the emulator evaluates appear in the context only once
        // evaluated (their `count` decides their shape); the others are
        // stand-ins from the start.
        let mut resources: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for (resource_type, name, _) in &declarations.resources {
            if EVALUATED_TYPES.contains(&resource_type.as_str()) {
                continue;
            }
            resources.entry(resource_type.clone()).or_default().insert(
                name.clone(),
                Value::Object(stand_in(resource_type, name, None)),
            );
        }
        let done = declarations
            .resources
            .iter()
            .map(|(resource_type, _, _)| !EVALUATED_TYPES.contains(&resource_type.as_str()))
            .collect();
        Self {
            declarations,
            variables,
            locals: Map::new(),
            resources,
            evaluated: Vec::new(),
            done,
        }
    }

    /// Evaluates in passes until nothing more resolves: a local or resource
    /// whose references are not ready yet waits for the next pass.
    fn run(mut self) -> TerraformModule {
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        loop {
            let mut progress = false;
            let names: Vec<String> = self
                .declarations
                .locals
                .keys()
                .filter(|name| !self.locals.contains_key(*name))
                .cloned()
                .collect();
            for name in names {
                let expression = self.declarations.locals[&name].clone();
                match expression.evaluate(&self.context()) {
                    Ok(value) => {
                        self.locals.insert(name.clone(), value);
                        errors.remove(&format!("local.{name}"));
                        progress = true;
                    }
                    Err(error) => {
                        errors.insert(format!("local.{name}"), error.to_string());
                    }
                }
            }
            for index in 0..self.declarations.resources.len() {
                if self.done[index] {
                    continue;
                }
                let (resource_type, name, body) = self.declarations.resources[index].clone();
                match self.evaluate_resource(&resource_type, &name, &body) {
                    Ok(instances) => {
                        self.store(&resource_type, &name, instances);
                        self.done[index] = true;
                        errors.remove(&format!("{resource_type}.{name}"));
                        progress = true;
                    }
                    Err(error) => {
                        errors.insert(format!("{resource_type}.{name}"), error);
                    }
                }
            }
            if !progress {
                break;
            }
        }
        // Locals that only feed resources the emulator does not evaluate
        // may fail to resolve; only unresolved resources are problems.
        let problems = errors
            .into_iter()
            .filter(|(address, _)| !address.starts_with("local."))
            .map(|(address, error)| format!("{address}: {error}"))
            .collect();
        self.evaluated.sort_by_key(ResourceInstance::address);
        TerraformModule {
            resources: self.evaluated,
            problems,
        }
    }

    fn context(&self) -> Context<'static> {
        let mut context = Context::new();
        declare_functions(&mut context);
        context.declare_var("var", Value::Object(self.variables.clone()));
        context.declare_var("local", Value::Object(self.locals.clone()));
        for (resource_type, instances) in &self.resources {
            context.declare_var(resource_type.clone(), Value::Object(instances.clone()));
        }
        context
    }

    fn evaluate_resource(
        &self,
        resource_type: &str,
        name: &str,
        body: &Body,
    ) -> Result<Vec<ResourceInstance>, String> {
        let context = self.context();
        let count = match body
            .attributes()
            .find(|attribute| attribute.key() == "count")
        {
            Some(attribute) => {
                let value = attribute
                    .expr()
                    .evaluate(&context)
                    .map_err(|e| e.to_string())?;
                Some(
                    value
                        .as_u64()
                        .ok_or_else(|| format!("count must be a whole number, got {value}"))?
                        as usize,
                )
            }
            None => None,
        };
        if body
            .attributes()
            .any(|attribute| attribute.key() == "for_each")
        {
            return Err("for_each is not supported on this resource type".into());
        }
        let indexes: Vec<Option<usize>> = match count {
            Some(count) => (0..count).map(Some).collect(),
            None => vec![None],
        };
        indexes
            .into_iter()
            .map(|index| {
                let mut context = self.context();
                if let Some(index) = index {
                    let mut count_object = Map::new();
                    count_object.insert("index".into(), Value::from(index as u64));
                    context.declare_var("count", Value::Object(count_object));
                }
                let mut value = stand_in(resource_type, name, index);
                for (key, evaluated) in evaluate_body(body, &context)? {
                    value.insert(key, evaluated);
                }
                if resource_type == "google_monitoring_slo" {
                    value.insert("name".into(), Value::String(slo_name(&value)));
                }
                Ok(ResourceInstance {
                    resource_type: resource_type.to_owned(),
                    name: name.to_owned(),
                    index,
                    value,
                })
            })
            .collect()
    }

    fn store(&mut self, resource_type: &str, name: &str, instances: Vec<ResourceInstance>) {
        let value = match instances.as_slice() {
            [single] if single.index.is_none() => Value::Object(single.value.clone()),
            many => Value::Array(
                many.iter()
                    .map(|i| Value::Object(i.value.clone()))
                    .collect(),
            ),
        };
        self.resources
            .entry(resource_type.to_owned())
            .or_default()
            .insert(name.to_owned(), value);
        self.evaluated.extend(instances);
    }
}

/// The attributes `terraform apply` would compute, as stable stand-ins.
fn stand_in(resource_type: &str, name: &str, index: Option<usize>) -> Map<String, Value> {
    let suffix = index.map_or(String::new(), |i| format!("-{i}"));
    let id = format!("{name}{suffix}");
    let mut value = Map::new();
    let mut put = |key: &str, text: String| {
        value.insert(key.to_owned(), Value::String(text));
    };
    put("id", format!("{resource_type}/{id}"));
    put("name", id.clone());
    put("uptime_check_id", id.clone());
    put("uri", format!("https://{id}.run.app"));
    put("email", format!("{id}@emulated.iam.gserviceaccount.com"));
    put(
        "member",
        format!("serviceAccount:{id}@emulated.iam.gserviceaccount.com"),
    );
    value
}

/// An SLO's resource name, as alert filters select it:
/// `projects/P/services/S/serviceLevelObjectives/ID` (the project `local`
/// unless the resource sets one; the emulator matches on the rest).
fn slo_name(value: &Map<String, Value>) -> String {
    let text = |key: &str| match value.get(key) {
        Some(Value::String(text)) => Some(text.clone()),
        _ => None,
    };
    format!(
        "projects/{}/services/{}/serviceLevelObjectives/{}",
        text("project").unwrap_or_else(|| "local".to_owned()),
        text("service").unwrap_or_default(),
        text("slo_id").unwrap_or_default(),
    )
}

/// A block body as an object: attributes evaluated, nested blocks as arrays
/// of objects, `dynamic` blocks expanded, meta-arguments left out.
fn evaluate_body(body: &Body, context: &Context) -> Result<Map<String, Value>, String> {
    let mut object = Map::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attribute) => {
                if META_ARGUMENTS.contains(&attribute.key()) {
                    continue;
                }
                let value = attribute
                    .expr()
                    .evaluate(context)
                    .map_err(|error| format!("{}: {error}", attribute.key()))?;
                object.insert(attribute.key().to_owned(), value);
            }
            Structure::Block(block) if block.identifier() == "lifecycle" => {}
            Structure::Block(block) if block.identifier() == "dynamic" => {
                let (label, items) = expand_dynamic(block, context)?;
                let entry = object
                    .entry(label)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(existing) = entry {
                    existing.extend(items.into_iter().map(Value::Object));
                }
            }
            Structure::Block(block) => {
                let nested = evaluate_body(block.body(), context)
                    .map_err(|error| format!("{}.{error}", block.identifier()))?;
                let entry = object
                    .entry(block.identifier().to_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = entry {
                    items.push(Value::Object(nested));
                }
            }
        }
    }
    Ok(object)
}

/// `dynamic "LABEL" { for_each = ...; iterator = NAME; content { ... } }`:
/// one `LABEL` block per element, with `NAME.key` and `NAME.value` (NAME
/// defaults to LABEL).
fn expand_dynamic(
    block: &Block,
    context: &Context,
) -> Result<(String, Vec<Map<String, Value>>), String> {
    let label = block
        .labels()
        .first()
        .map(|label| label.as_str().to_owned())
        .ok_or("a dynamic block needs a label")?;
    let body = block.body();
    let attribute = |key: &str| body.attributes().find(|attribute| attribute.key() == key);
    let for_each = attribute("for_each")
        .ok_or_else(|| format!("dynamic \"{label}\" has no for_each"))?
        .expr()
        .evaluate(context)
        .map_err(|error| format!("dynamic \"{label}\" for_each: {error}"))?;
    let iterator = match attribute("iterator") {
        Some(iterator) => match iterator.expr() {
            Expression::Variable(name) => name.as_str().to_owned(),
            _ => return Err(format!("dynamic \"{label}\": iterator must be a name")),
        },
        None => label.clone(),
    };
    let content = body
        .blocks()
        .find(|block| block.identifier() == "content")
        .ok_or_else(|| format!("dynamic \"{label}\" has no content block"))?;
    let elements: Vec<(Value, Value)> = match for_each {
        Value::Object(map) => map
            .into_iter()
            .map(|(key, value)| (Value::String(key), value))
            .collect(),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, value)| (Value::from(index as u64), value))
            .collect(),
        Value::Null => Vec::new(),
        other => return Err(format!("dynamic \"{label}\": for_each over {other}")),
    };
    let mut items = Vec::with_capacity(elements.len());
    for (key, value) in elements {
        let mut iteration = Map::new();
        iteration.insert("key".to_owned(), key);
        iteration.insert("value".to_owned(), value);
        let mut scope = context.clone();
        scope.declare_var(iterator.clone(), Value::Object(iteration));
        items.push(evaluate_body(content.body(), &scope)?);
    }
    Ok((label, items))
}

/// The Terraform functions the deployment's expressions use.
fn declare_functions(context: &mut Context) {
    let unary = |func| FuncDef::builder().param(ParamType::Any).build(func);
    let binary = |func| {
        FuncDef::builder()
            .param(ParamType::Any)
            .param(ParamType::Any)
            .build(func)
    };
    let variadic = |func| {
        FuncDef::builder()
            .variadic_param(ParamType::Any)
            .build(func)
    };
    context.declare_func("nonsensitive", unary(|args| Ok(first(args))));
    context.declare_func("sensitive", unary(|args| Ok(first(args))));
    context.declare_func(
        "tostring",
        unary(|args| Ok(Value::String(text_of(&first(args))))),
    );
    context.declare_func(
        "tonumber",
        unary(|args| {
            let text = text_of(&first(args));
            text.parse::<f64>()
                .map(Value::from)
                .map_err(|_| format!("tonumber: {text:?} is not a number"))
        }),
    );
    context.declare_func(
        "floor",
        unary(|args| {
            let value = first(args);
            value
                .as_f64()
                .map(|n| Value::from(n.floor() as i64))
                .ok_or_else(|| format!("floor: {value} is not a number"))
        }),
    );
    context.declare_func(
        "lower",
        unary(|args| Ok(Value::String(text_of(&first(args)).to_lowercase()))),
    );
    context.declare_func(
        "upper",
        unary(|args| Ok(Value::String(text_of(&first(args)).to_uppercase()))),
    );
    context.declare_func(
        "length",
        unary(|args| match first(args) {
            Value::Array(items) => Ok(Value::from(items.len() as u64)),
            Value::Object(map) => Ok(Value::from(map.len() as u64)),
            Value::String(text) => Ok(Value::from(text.chars().count() as u64)),
            other => Err(format!("length: {other} has no length")),
        }),
    );
    context.declare_func(
        "keys",
        unary(|args| match first(args) {
            Value::Object(map) => Ok(Value::Array(
                map.keys().cloned().map(Value::String).collect(),
            )),
            other => Err(format!("keys: {other} is not an object")),
        }),
    );
    context.declare_func(
        "toset",
        unary(|args| match first(args) {
            Value::Array(mut items) => {
                items.dedup();
                Ok(Value::Array(items))
            }
            other => Err(format!("toset: {other} is not a list")),
        }),
    );
    context.declare_func("tolist", unary(|args| Ok(first(args))));
    context.declare_func(
        "trimprefix",
        binary(|args| {
            let [text, prefix] = two_texts(args);
            Ok(Value::String(
                text.strip_prefix(&prefix).unwrap_or(&text).to_owned(),
            ))
        }),
    );
    context.declare_func(
        "trimsuffix",
        binary(|args| {
            let [text, suffix] = two_texts(args);
            Ok(Value::String(
                text.strip_suffix(&suffix).unwrap_or(&text).to_owned(),
            ))
        }),
    );
    context.declare_func(
        "startswith",
        binary(|args| {
            let [text, prefix] = two_texts(args);
            Ok(Value::Bool(text.starts_with(&prefix)))
        }),
    );
    context.declare_func(
        "endswith",
        binary(|args| {
            let [text, suffix] = two_texts(args);
            Ok(Value::Bool(text.ends_with(&suffix)))
        }),
    );
    context.declare_func(
        "split",
        binary(|args| {
            let [separator, text] = two_texts(args);
            Ok(Value::Array(
                text.split(separator.as_str())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ))
        }),
    );
    context.declare_func(
        "join",
        binary(|args| {
            let mut values = args.into_values().into_iter();
            let separator = values.next().map(|v| text_of(&v)).unwrap_or_default();
            match values.next() {
                Some(Value::Array(items)) => Ok(Value::String(
                    items
                        .iter()
                        .map(text_of)
                        .collect::<Vec<_>>()
                        .join(&separator),
                )),
                other => Err(format!("join: {other:?} is not a list")),
            }
        }),
    );
    context.declare_func(
        "element",
        binary(|args| {
            let mut values = args.into_values().into_iter();
            match (values.next(), values.next().and_then(|v| v.as_u64())) {
                (Some(Value::Array(items)), Some(index)) if !items.is_empty() => {
                    Ok(items[index as usize % items.len()].clone())
                }
                _ => Err("element: expects a non-empty list and an index".into()),
            }
        }),
    );
    context.declare_func(
        "concat",
        variadic(|args| {
            let mut joined = Vec::new();
            for value in args.into_values() {
                match value {
                    Value::Array(items) => joined.extend(items),
                    other => return Err(format!("concat: {other} is not a list")),
                }
            }
            Ok(Value::Array(joined))
        }),
    );
    context.declare_func(
        "merge",
        variadic(|args| {
            let mut merged = Map::new();
            for value in args.into_values() {
                match value {
                    Value::Object(map) => merged.extend(map),
                    Value::Null => {}
                    other => return Err(format!("merge: {other} is not an object")),
                }
            }
            Ok(Value::Object(merged))
        }),
    );
}

fn first(args: FuncArgs) -> Value {
    args.into_values().into_iter().next().unwrap_or(Value::Null)
}

fn two_texts(args: FuncArgs) -> [String; 2] {
    let mut values = args.into_values().into_iter().map(|v| text_of(&v));
    [
        values.next().unwrap_or_default(),
        values.next().unwrap_or_default(),
    ]
}

/// A value as Terraform's `tostring` writes it.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module_from(text: &str, inputs: &VariableInputs) -> TerraformModule {
        let dir = std::env::temp_dir().join(format!("tf-test-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.tf"), text).unwrap();
        let module = load(&dir, inputs).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        module
    }

    const SAMPLE: &str = r#"
variable "name" { default = "shop" }
variable "threshold_ms" { default = 1000 }
variable "webhook" { default = "" }
locals {
  service = "${var.name}-frontend"
  filter  = "resource.labels.namespace=\"${local.service}\""
  channels = concat([google_monitoring_notification_channel.email.name], google_monitoring_notification_channel.hook[*].name)
}
resource "google_monitoring_notification_channel" "email" {
  type = "email"
  labels = { email_address = "oncall@example.com" }
  depends_on = [google_project_service.enabled]
}
resource "google_monitoring_notification_channel" "hook" {
  count = nonsensitive(var.webhook != "") ? 1 : 0
  type  = "webhook_tokenauth"
  labels = { url = var.webhook }
}
resource "google_monitoring_alert_policy" "latency" {
  display_name          = "p95 above ${var.threshold_ms} ms"
  notification_channels = local.channels
  conditions {
    display_name = "p95"
    condition_threshold {
      filter          = "metric.type=\"x\" AND ${local.filter}"
      threshold_value = var.threshold_ms / 1000
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_DELTA"
      }
    }
  }
}
resource "google_project_service" "enabled" {
  for_each = toset(["run.googleapis.com"])
  service  = each.value
}
"#;

    #[test]
    fn variables_locals_references_and_count_resolve() {
        let module = module_from(SAMPLE, &VariableInputs::default());
        assert!(module.problems.is_empty(), "{:?}", module.problems);
        let policy = module
            .of_type("google_monitoring_alert_policy")
            .next()
            .unwrap()
            .to_json();
        assert_eq!(policy["display_name"], "p95 above 1000 ms");
        let condition = &policy["conditions"][0]["condition_threshold"][0];
        assert_eq!(
            condition["filter"],
            "metric.type=\"x\" AND resource.labels.namespace=\"shop-frontend\""
        );
        assert_eq!(condition["threshold_value"].as_f64(), Some(1.0));
        assert_eq!(
            policy["notification_channels"],
            serde_json::json!(["email"])
        );
        assert_eq!(
            module
                .of_type("google_monitoring_notification_channel")
                .count(),
            1
        );
    }

    #[test]
    fn overrides_change_the_outcome() {
        let inputs = VariableInputs {
            var_file: None,
            overrides: vec![
                ("threshold_ms".into(), Value::from(250)),
                ("webhook".into(), Value::from("http://127.0.0.1:9/hook")),
            ],
        };
        let module = module_from(SAMPLE, &inputs);
        let policy = module
            .of_type("google_monitoring_alert_policy")
            .next()
            .unwrap()
            .to_json();
        let condition = &policy["conditions"][0]["condition_threshold"][0];
        assert_eq!(condition["threshold_value"].as_f64(), Some(0.25));
        assert_eq!(
            policy["notification_channels"],
            serde_json::json!(["email", "hook-0"])
        );
        let hooks: Vec<String> = module
            .of_type("google_monitoring_notification_channel")
            .map(ResourceInstance::address)
            .collect();
        assert_eq!(
            hooks,
            vec![
                "google_monitoring_notification_channel.email",
                "google_monitoring_notification_channel.hook[0]"
            ]
        );
    }

    #[test]
    fn an_unknown_override_is_an_error() {
        let dir = std::env::temp_dir().join(format!("tf-test-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.tf"), SAMPLE).unwrap();
        let inputs = VariableInputs {
            var_file: None,
            overrides: vec![("treshold_ms".into(), Value::from(1))],
        };
        let error = load(&dir, &inputs).unwrap_err();
        assert!(error.to_string().contains("treshold_ms"), "{error}");
    }

    #[test]
    fn what_cannot_be_evaluated_is_reported_not_dropped() {
        let module = module_from(
            r#"resource "google_logging_metric" "m" { filter = var.missing }"#,
            &VariableInputs::default(),
        );
        assert_eq!(module.resources.len(), 0);
        assert_eq!(module.problems.len(), 1);
        assert!(
            module.problems[0].starts_with("google_logging_metric.m:"),
            "{:?}",
            module.problems
        );
    }
}
