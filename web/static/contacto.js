/* The public contact form: nothing is required to work without JavaScript; this only moves focus to the first
   field with an error so keyboard and screen-reader users land on it. */
(function () {
  "use strict";
  var invalid = document.querySelector('[aria-invalid="true"]');
  if (invalid) invalid.focus();
})();
