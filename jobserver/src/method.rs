//! The RPC methods as an enum: the name is matched once per request, and
//! the rest of the call (dispatch, the request metrics' fixed array) works
//! with a small integer instead of a string.

macro_rules! methods {
    ($($variant:ident => $name:literal,)*) => {
        /// One of the Python-compatible RPC methods.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Method {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Method {
            /// Every method, in the order of their discriminants.
            pub const ALL: &'static [Method] = &[$(Method::$variant,)*];

            /// Its snake_case name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Method::$variant => $name,)*
                }
            }

            /// The method of a snake_case name (see `wire::snake`).
            pub fn from_snake(name: &str) -> Option<Method> {
                match name {
                    $($name => Some(Method::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

methods! {
    ListWorkSpecs => "list_work_specs",
    SetWorkSpec => "set_work_spec",
    DelWorkSpec => "del_work_spec",
    Clear => "clear",
    GetWorkSpec => "get_work_spec",
    ControlWorkSpec => "control_work_spec",
    GetWorkSpecMeta => "get_work_spec_meta",
    AddWorkUnits => "add_work_units",
    GetWorkUnits => "get_work_units",
    GetWorkUnitStatus => "get_work_unit_status",
    PrioritizeWorkUnits => "prioritize_work_units",
    CountWorkUnits => "count_work_units",
    DelWorkUnits => "del_work_units",
    Archive => "archive",
    GetWork => "get_work",
    UpdateWorkUnit => "update_work_unit",
    WorkerHeartbeat => "worker_heartbeat",
    WorkerUnregister => "worker_unregister",
    ListWorkerModes => "list_worker_modes",
    GetWorkerInfo => "get_worker_info",
    ModeCounts => "mode_counts",
    WorkerStats => "worker_stats",
    GetChildWorkUnits => "get_child_work_units",
    Lock => "lock",
    Renew => "renew",
    LockSome => "locksome",
    ReadLock => "readlock",
    Unlock => "unlock",
    DeleteNamespace => "delete_namespace",
    Now => "now",
    GetConfig => "get_config",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_discriminant_order() {
        assert_eq!(Method::ALL.len(), 31);
        for (i, &m) in Method::ALL.iter().enumerate() {
            assert_eq!(m as usize, i);
            assert_eq!(Method::from_snake(m.name()), Some(m));
        }
        assert_eq!(Method::from_snake("GetWork"), None, "CamelCase goes through wire::snake first");
    }
}
