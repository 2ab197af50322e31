//! The commands' side of the controller: input loading and its refusals
//! (`input`), one start-up path that `zkop local up` (`local`, and
//! `local_many` for a directory of specs) and `zkop run`
//! (`run`, and `run_many` for a directory: a controller group) share (`serve`: secrets, the API, the loop, an orderly stop), and
//! the client that `zkop status`, `roll`, `replace` and `connect-string` use
//! (`client`), the connect-string file (`discovery`), and
//! `zkop backup`'s reading of a backup (`backup`) and the controller's
//! pruning of it (`retention`); restore drills are the runtime's (agents run them too).

pub mod backup;
pub mod client;
pub mod client_cert;
pub mod discovery;
pub mod input;
pub mod local;
pub mod local_many;
pub mod retention;
pub mod run;
pub mod run_many;
pub mod serve;
