//! Interfaces added after 1.0, found by name: how a 1.x release adds an
//! entry point without locking out plugins built before it.
//!
//! abi_stable checks the layout of everything reachable from the root
//! module when a library loads, and refuses one whose prefix types or
//! trait vtables have *fewer* fields or methods than the host's. So no
//! layout reachable from [`PluginMod`](crate::PluginMod) may grow within
//! 1.x. A new entry point is instead a new *interface*: an immutable,
//! named `StableAbi` type (typically a `#[sabi_trait]` object), defined in
//! this crate, that a backend hands out from
//! [`Backend::interface`](crate::Backend::interface) by name. A plugin
//! built before the interface existed answers "none", and the host falls
//! back to what 1.0 did. A changed interface gets a new name
//! (`strata.vector.bulk.v2`), never a new layout under the old one; the
//! host still checks the layout of what it receives before using it, so a
//! mismatch is an error naming the cause, never undefined behaviour.

use std::mem::ManuallyDrop;

use abi_stable::{
    StableAbi, abi_stability::abi_checking::check_layout_compatibility, marker_type::ErasedObject,
    std_types::RBox, type_layout::TypeLayout,
};

/// An interface object, type-erased, with the layout it was built with.
#[repr(C)]
#[derive(StableAbi)]
pub struct InterfaceBox {
    layout: &'static TypeLayout,
    object: RBox<ErasedObject>,
}

impl InterfaceBox {
    /// Boxes `value` (the plugin side).
    pub fn new<T: StableAbi + Send + Sync + 'static>(value: T) -> InterfaceBox {
        let boxed = ManuallyDrop::new(RBox::new(value));
        // SAFETY: `RBox<T>` and `RBox<ErasedObject>` have the same layout
        // (a pointer to the value and a pointer to its vtable, which keeps
        // `T`'s destructor); the value is only seen as a `T` again after
        // `downcast` checked the layouts.
        let object =
            unsafe { std::ptr::read(&*boxed as *const RBox<T> as *const RBox<ErasedObject>) };
        InterfaceBox {
            layout: T::LAYOUT,
            object,
        }
    }

    /// The object as the `T` this side knows, once abi_stable found the
    /// layouts compatible (the host side); otherwise abi_stable's report.
    pub fn downcast<T: StableAbi + 'static>(self) -> Result<T, String> {
        check_layout_compatibility(T::LAYOUT, self.layout).map_err(|e| e.to_string())?;
        let object = ManuallyDrop::new(self.object);
        // SAFETY: the layout of what the plugin boxed is compatible with
        // `T`'s (checked above), and `RBox<ErasedObject>` was made from an
        // `RBox` of it (see `new`).
        let boxed =
            unsafe { std::ptr::read(&*object as *const RBox<ErasedObject> as *const RBox<T>) };
        Ok(RBox::into_inner(boxed))
    }
}

impl std::fmt::Debug for InterfaceBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterfaceBox")
            .field("type", &self.layout.name())
            .finish()
    }
}
