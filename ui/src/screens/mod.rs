pub mod history;
pub mod home;
pub mod notifications;
pub mod onboarding;
pub mod receive;
pub mod send;
pub mod settings;
pub mod status;
