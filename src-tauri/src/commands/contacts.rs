//! Contacts.

use tauri::State;

use super::CmdResult;
use crate::core::Core;
use crate::ipc::GuestLink;

/// Asks `username` to be a contact, or accepts their request.
#[tauri::command]
pub async fn add_contact(core: State<'_, Core>, username: String) -> CmdResult<()> {
    core.add_contact(&username)
}

/// Whether people who are not contacts may call us ("Anyone may call me" in Settings).
#[tauri::command]
pub async fn set_privacy(core: State<'_, Core>, anyone_may_call: bool) -> CmdResult<()> {
    core.set_privacy(anyone_may_call)
}

/// Removes `username` from the contact list, or withdraws or declines a request.
#[tauri::command]
pub async fn remove_contact(core: State<'_, Core>, username: String) -> CmdResult<()> {
    core.remove_contact(&username)
}

/// Makes a one-use guest link ("Invite by link").
#[tauri::command]
pub async fn create_guest_link(core: State<'_, Core>) -> CmdResult<GuestLink> {
    core.create_guest_link().await
}

/// Revokes a guest link made here before it is used.
#[tauri::command]
pub async fn revoke_guest_link(core: State<'_, Core>, token: String) -> CmdResult<()> {
    core.revoke_guest_link(&token).await
}
