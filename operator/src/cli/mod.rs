//! The commands' side of the controller: input loading and its refusals
//! (`input`), one start-up path that `zkop local up` (`local`) and `zkop run`
//! (`run`) share (`serve`: secrets, the API, the loop, an orderly stop), and
//! the client that `zkop status`, `roll` and `replace` use (`client`), and
//! `zkop backup`'s reading of a backup (`backup`), its restore drills
//! (`drill`) and the controller's pruning of it (`retention`).

pub mod backup;
pub mod client;
pub mod drill;
pub mod input;
pub mod local;
pub mod retention;
pub mod run;
pub mod serve;
