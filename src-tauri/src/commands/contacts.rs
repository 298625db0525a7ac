//! Contacts.

use tauri::State;

use super::CmdResult;
use crate::core::Core;

/// Adds `username` to the contact list.
#[tauri::command]
pub async fn add_contact(core: State<'_, Core>, username: String) -> CmdResult<()> {
    core.add_contact(&username)
}

/// Removes `username` from the contact list.
#[tauri::command]
pub async fn remove_contact(core: State<'_, Core>, username: String) -> CmdResult<()> {
    core.remove_contact(&username)
}
