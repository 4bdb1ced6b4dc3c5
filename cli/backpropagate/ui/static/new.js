// The new-run form: a click on a listed model puts it in the model field (which still takes any hub id).
document.querySelectorAll("#model-list .pick").forEach(button => button.addEventListener("click", () => {
  const field = document.querySelector("#train input[name=model]");
  field.value = button.dataset.model;
  field.focus();
}));
