//! The Dyad desktop app. Everything lives in the library (`dyad_app`); this only starts it.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> anyhow::Result<()> {
    dyad_app::main_entry()
}
