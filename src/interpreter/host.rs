//! Host actions: Rust functions a machine calls with `Call("name", args: [...])`.

use crate::model::Json;
use indexmap::IndexMap;
use std::collections::HashMap;

/// A host action: receives the evaluated arguments and the context (to read or change), and
/// fails with a message that becomes `error.execution`.
pub type HostAction =
    Box<dyn Fn(&[Json], &mut IndexMap<String, Json>) -> Result<(), String> + Send + Sync>;

/// The host actions an embedding program registers.
///
/// ```
/// use orca::interpreter::Host;
/// let mut host = Host::default();
/// host.register("remember", |args, ctx| {
///     ctx.insert("last".into(), args.first().cloned().unwrap_or_default());
///     Ok(())
/// });
/// assert!(host.names().any(|n| n == "remember"));
/// ```
#[derive(Default)]
pub struct Host {
    actions: HashMap<String, HostAction>,
    /// Names not registered here go out as [`super::Effect::Call`] instead of failing.
    pub pass_through: bool,
}

impl Host {
    /// Registers (or replaces) a host action.
    pub fn register(
        &mut self,
        name: &str,
        f: impl Fn(&[Json], &mut IndexMap<String, Json>) -> Result<(), String> + Send + Sync + 'static,
    ) {
        self.actions.insert(name.to_string(), Box::new(f));
    }

    pub fn get(&self, name: &str) -> Option<&HostAction> {
        self.actions.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.actions.keys().map(String::as_str)
    }

    /// Compile options that accept exactly these actions.
    pub fn compile_options(&self) -> crate::chart::CompileOptions {
        crate::chart::CompileOptions {
            host_actions: self.actions.keys().cloned().collect(),
            allow_unknown_host_actions: self.pass_through,
        }
    }
}
